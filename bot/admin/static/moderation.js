// Keyboard shortcuts for the moderation queue; every action is also a plain form without them.
// j/k: next/previous item · a: approve · h: hide (the reason list gets focus; Enter hides)
// · r: ask to rephrase. Keys typed into a field, or with a modifier, are left alone.
(function () {
  "use strict";
  var items = Array.prototype.slice.call(document.querySelectorAll("article.item"));
  var help = document.getElementById("shortcuts");
  if (help && items.length) {
    help.hidden = false;
  }
  var current = -1;

  function select(index, focus) {
    if (!items.length) {
      return;
    }
    index = Math.max(0, Math.min(items.length - 1, index));
    if (current >= 0) {
      items[current].classList.remove("current");
    }
    current = index;
    var item = items[current];
    item.classList.add("current");
    if (focus) {
      item.focus();
      item.scrollIntoView({ block: "nearest" });
    }
  }

  function form(key) {
    return current < 0 ? null : items[current].querySelector('form[data-shortcut="' + key + '"]');
  }

  function submit(key) {
    var chosen = form(key);
    if (chosen) {
      chosen.requestSubmit();
    }
  }

  function typing(target) {
    var name = target && target.tagName;
    return name === "INPUT" || name === "SELECT" || name === "TEXTAREA" || target.isContentEditable;
  }

  // An item the moderator clicks into or tabs to becomes the one the keys act on.
  items.forEach(function (item, index) {
    item.addEventListener("focusin", function () {
      select(index, false);
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.defaultPrevented) {
      return;
    }
    var target = event.target;
    if (target && target.tagName === "SELECT" && target.name === "reason" && event.key === "Enter") {
      event.preventDefault();
      target.form.requestSubmit();
      return;
    }
    if (typing(target) || !items.length) {
      return;
    }
    var handled = true;
    if (event.key === "j") {
      select(current + 1, true);
    } else if (event.key === "k") {
      select(current - 1, true);
    } else if (event.key === "a") {
      submit("a");
    } else if (event.key === "r") {
      submit("r");
    } else if (event.key === "h") {
      var hide = form("h");
      if (hide) {
        hide.querySelector("select").focus();
      }
    } else {
      handled = false;
    }
    if (handled) {
      event.preventDefault();
    }
  });

  // After a reveal the keys act on the revealed item; after a decision the page comes back and
  // they act on the oldest item that still waits.
  var revealed = document.querySelector("article.item .contribution.revealed");
  select(revealed ? items.indexOf(revealed.closest("article.item")) : 0, false);
})();
