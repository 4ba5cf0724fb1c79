// The column chooser of list pages (templates/common/list.html) is a <details> with a
// form and works without this file; here it closes like a menu: on a click outside it
// and on Escape.
(function () {
  "use strict";

  function openChoosers() {
    return document.querySelectorAll("details.calmail-columns[open]");
  }

  document.addEventListener("click", function (event) {
    openChoosers().forEach(function (chooser) {
      if (!chooser.contains(event.target)) {
        chooser.open = false;
      }
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") {
      return;
    }
    openChoosers().forEach(function (chooser) {
      chooser.open = false;
      chooser.querySelector("summary").focus();
    });
  });
})();
