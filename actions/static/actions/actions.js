// Actions form: the next runs update as the rule changes, the audience of the next run as
// the recipients, template, report scope or rule change (the recipients field is the shared
// picker, static/js/recipient-picker.js, which fires "change" on its input), and the
// report's customers show only for "chosen customers". Plain JavaScript wired through data
// attributes (the CSP forbids inline scripts); without it the "Show next runs" button
// shows both previews and the customers list is always there.
(function () {
  "use strict";

  function debounce(fn, wait) {
    var timer = null;
    return function () {
      var args = arguments;
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { fn.apply(null, args); }, wait);
    };
  }

  // --- Next runs -------------------------------------------------------------------------

  function setupNextRuns(list) {
    var first = document.querySelector("[data-rule-field]");
    var form = first ? first.form : null;
    var message = document.querySelector("[data-next-runs-message]");
    if (!form) {
      return;
    }
    var latest = 0;
    var update = debounce(function () {
      var params = new URLSearchParams();
      form.querySelectorAll("[data-rule-field]").forEach(function (field) {
        if (field.type === "checkbox") {
          if (field.checked) {
            params.append(field.name, field.value);
          }
        } else if (field.tagName === "SELECT" && field.multiple) {
          Array.prototype.forEach.call(field.selectedOptions, function (option) {
            params.append(field.name, option.value);
          });
        } else if (field.value) {
          params.append(field.name, field.value);
        }
      });
      var request = ++latest;
      fetch(list.dataset.nextRunsUrl + "?" + params.toString(), {
        headers: { Accept: "application/json" }, credentials: "same-origin"
      })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data || request !== latest) {
            return;
          }
          list.replaceChildren();
          data.runs.forEach(function (run) {
            var item = document.createElement("li");
            item.textContent = run;
            list.appendChild(item);
          });
          if (message) {
            message.textContent = data.message;
          }
          list.dataset.loaded = String(request);
        })
        .catch(function () { /* the button still shows them */ });
    }, 250);
    form.querySelectorAll("[data-rule-field]").forEach(function (field) {
      field.addEventListener("change", update);
      field.addEventListener("input", update);
    });
    update();
  }

  // --- Toggle grids (day of month, weekday, month) -----------------------------------------

  // <div data-toggle-grid>: "select all / none" (they fire "change" like a click would, so
  // the previews follow) and arrow keys that move between the buttons (Space toggles).
  function setupToggleGrid(grid) {
    var boxes = Array.prototype.slice.call(grid.querySelectorAll("input[type=checkbox]"));
    var controls = grid.querySelector("[data-toggle-controls]");
    function setAll(checked) {
      boxes.forEach(function (box) {
        if (box.checked !== checked) {
          box.checked = checked;
          box.dispatchEvent(new Event("change", { bubbles: true }));
        }
      });
    }
    if (controls) {
      controls.hidden = false;
      controls.querySelector("[data-toggle-all]").addEventListener("click", function () {
        setAll(true);
      });
      controls.querySelector("[data-toggle-none]").addEventListener("click", function () {
        setAll(false);
      });
    }
    function columns() {
      var template = window.getComputedStyle(boxes[0].parentNode).gridTemplateColumns || "";
      return Math.max(1, template.split(" ").filter(Boolean).length);
    }
    var steps = { ArrowRight: 1, ArrowLeft: -1 };
    boxes.forEach(function (box, index) {
      box.addEventListener("keydown", function (event) {
        var step = steps[event.key];
        if (event.key === "ArrowDown") step = columns();
        if (event.key === "ArrowUp") step = -columns();
        if (!step) return;
        var target = boxes[index + step];
        if (target) {
          event.preventDefault();
          target.focus();
        }
      });
    });
  }

  // --- Audience of the next run ------------------------------------------------------------

  function setupAudience(box) {
    var first = document.querySelector("[data-audience-field]");
    var form = first ? first.form : null;
    if (!form) {
      return;
    }
    var latest = 0;
    // The whole form goes along (the rule decides the run's day): POST, with the form's
    // own CSRF token, in the body as Django reads it and in the header.
    var update = debounce(function () {
      var data = new FormData(form);
      var token = form.querySelector("input[name=csrfmiddlewaretoken]");
      var request = ++latest;
      fetch(box.dataset.audiencePreviewUrl, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { Accept: "text/html", "X-CSRFToken": token ? token.value : "" }
      })
        .then(function (response) {
          // Redirected: the session ended and this is the login page, not the fragment.
          return response.ok && !response.redirected ? response.text() : null;
        })
        .then(function (html) {
          if (html === null || request !== latest) {
            return;
          }
          // Our own server-rendered, escaped fragment (no scripts: the CSP would stop them).
          box.innerHTML = html;
          box.dataset.loaded = String(request);
        })
        .catch(function () { /* the button still shows it */ });
    }, 300);
    form.querySelectorAll("[data-audience-field], [data-rule-field]").forEach(function (field) {
      field.addEventListener("change", update);
      if (field.type !== "hidden") {
        field.addEventListener("input", update);
      }
    });
    update();
  }

  // --- Report scope -----------------------------------------------------------------------

  // <select data-shown-for-scope="customers">: shown and enabled only while that report
  // scope is picked (a hidden list is not submitted, so it cannot count).
  function setupScopeCustomers(select) {
    var form = select.form;
    var radios = form ? form.querySelectorAll("input[type=radio][name=report_scope]") : [];
    if (!radios.length) {
      return;
    }
    var wrapper = select.closest("#div_id_" + select.name) || select;
    function sync() {
      var checked = form.querySelector("input[type=radio][name=report_scope]:checked");
      var shown = !!checked && checked.value === select.dataset.shownForScope;
      wrapper.hidden = !shown;
      select.disabled = !shown;
    }
    Array.prototype.forEach.call(radios, function (radio) {
      radio.addEventListener("change", sync);
    });
    sync();
  }

  function init() {
    document.querySelectorAll("[data-toggle-grid]").forEach(setupToggleGrid);
    document.querySelectorAll("[data-shown-for-scope]").forEach(setupScopeCustomers);
    document.querySelectorAll("[data-next-runs-url]").forEach(setupNextRuns);
    document.querySelectorAll("[data-audience-preview-url]").forEach(setupAudience);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
