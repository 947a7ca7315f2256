// The content plan: follow running broadcasts. Each progress box with a data-progress address
// asks it (JSON) every few seconds and shows the new figures, until the post has gone out.
// The page shows the figures of its moment without this script.
(function () {
  "use strict";
  var EVERY = 3000;

  function show(box, progress) {
    var bar = box.querySelector("progress");
    if (bar) {
      bar.max = Math.max(progress.total, 1);
      bar.value = progress.done;
      bar.textContent = progress.done + " / " + progress.total;
    }
    var summary = box.querySelector(".summary");
    if (summary && summary.textContent !== progress.summary) {
      summary.textContent = progress.summary;
    }
    var post = box.closest("[data-post]");
    var state = post && post.querySelector(".state");
    if (state) {
      state.className = "state state-" + progress.state;
      state.querySelector(".marker").textContent = progress.marker;
      state.querySelector(".word").textContent = progress.state_text;
    }
    if (post && post.classList.contains("post")) {
      post.className = "post state-" + progress.state;
    }
  }

  function follow(box) {
    var address = box.getAttribute("data-progress");
    function ask() {
      fetch(address, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (progress) {
          show(box, progress);
          if (progress.state === "planned" || progress.state === "sending") {
            window.setTimeout(ask, EVERY);
          }
        })
        .catch(function () {
          // Logged out or offline: try again later, more slowly; the page itself stays right.
          window.setTimeout(ask, EVERY * 5);
        });
    }
    window.setTimeout(ask, EVERY);
  }

  document.querySelectorAll("[data-progress]").forEach(follow);
})();
