// The import form: a mistake names its line ("linje 12: …"); following it selects that line in
// the text box, and a line under the box says where the cursor is, so the line can be found in
// a long file. Without this script each mistake still leads to the text box.
(function () {
  "use strict";
  var source = document.getElementById("source");
  if (!source) {
    return;
  }
  var position = document.getElementById("source-position");

  function lineStart(text, line) {
    var at = 0;
    for (var number = 1; number < line; number += 1) {
      var next = text.indexOf("\n", at);
      if (next < 0) {
        return text.length;
      }
      at = next + 1;
    }
    return at;
  }

  function showPosition() {
    if (!position) {
      return;
    }
    var before = source.value.slice(0, source.selectionStart);
    var line = before.split("\n").length;
    var column = before.length - before.lastIndexOf("\n");
    position.textContent = position.getAttribute("data-template")
      .replace("{line}", String(line))
      .replace("{column}", String(column));
    position.hidden = false;
  }

  ["input", "keyup", "click", "select", "focus"].forEach(function (name) {
    source.addEventListener(name, showPosition);
  });

  document.querySelectorAll("a[data-line]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      var line = parseInt(link.getAttribute("data-line"), 10);
      var text = source.value;
      var start = lineStart(text, line);
      var end = text.indexOf("\n", start);
      source.focus();
      source.setSelectionRange(start, end < 0 ? text.length : end);
      // Brought into view with a few lines above it, as an editor does.
      var height = parseFloat(window.getComputedStyle(source).lineHeight) || 20;
      source.scrollTop = Math.max(0, (line - 4) * height);
      showPosition();
    });
  });
})();
