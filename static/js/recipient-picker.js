// The recipient picker (calmail.common.widgets.RecipientPicker): chips with
// search-as-you-type for compose, actions and the template preview. Plain JavaScript wired
// through data attributes (the CSP forbids inline script); without JavaScript the field
// stays a text field of comma-separated tokens, and the submitted value is the same.
//
// <input data-recipient-picker="/inventory/recipients/search/"  the search endpoint
//        data-choices='[{"token": …, "label": …, "kind_label": …, "detail": …}]'
//        data-remove-label="Remove"                              the chips' button label
//        data-single                                             at most one token
//        data-audiences>                                         also offer the audiences
//                                                                (actions: found at run time)
// The input keeps the submitted value ("customer:5, list:3, a@example.com"); chips show
// the labels (a distribution list by its name: it is expanded only when sent). A change of
// the selection fires "change" on the input.
(function () {
  "use strict";

  // Split at commas/semicolons outside quotes and angle brackets, like
  // inventory.recipients.split_recipient_text.
  function splitTokens(text) {
    var tokens = [], current = "", quoted = false, bracketed = false;
    for (var i = 0; i < text.length; i++) {
      var c = text[i];
      if (c === '"' && !bracketed) quoted = !quoted;
      else if (c === "<" && !quoted) bracketed = true;
      else if (c === ">" && !quoted) bracketed = false;
      if ((c === "," || c === ";" || c === "\n") && !quoted && !bracketed) {
        tokens.push(current);
        current = "";
      } else {
        current += c;
      }
    }
    tokens.push(current);
    return tokens.map(function (t) { return t.trim(); }).filter(Boolean);
  }

  function setupTokens(field) {
    // Once per field: a page may load this script twice (crispy-forms renders the form's
    // media inside the form, and the page's extra_js again), which gave two chip boxes.
    if (field.dataset.pickerReady) return;
    field.dataset.pickerReady = "1";
    var url = field.dataset.recipientPicker;
    var single = field.hasAttribute("data-single");
    var audiences = field.hasAttribute("data-audiences");
    var labels = {};
    try {
      JSON.parse(field.dataset.choices || "[]").forEach(function (choice) {
        labels[choice.token] = choice;
      });
    } catch (e) { /* labels are a nicety: tokens show as typed */ }

    var tokens = splitTokens(field.value);
    var box = document.createElement("div");
    box.className = "form-control d-flex flex-wrap gap-1 align-items-center position-relative";
    box.dataset.tokenBox = field.name;
    var input = document.createElement("input");
    input.type = "text";
    input.className = "border-0 flex-grow-1 token-input";
    input.setAttribute("autocomplete", "off");
    input.setAttribute("aria-label", field.labels && field.labels[0] ? field.labels[0].textContent.trim() : field.name);
    if (field.id) input.id = field.id + "_search";
    var menu = document.createElement("div");
    menu.className = "list-group position-absolute top-100 start-0 shadow-sm d-none token-menu";
    menu.setAttribute("role", "listbox");
    box.appendChild(input);
    box.appendChild(menu);
    field.type = "hidden";
    field.parentNode.insertBefore(box, field.nextSibling);
    if (field.classList.contains("is-invalid")) box.classList.add("is-invalid");

    function sync() {
      var before = field.value;
      field.value = tokens.join(", ");
      // A hidden field fires no events of its own: tell listeners (the actions form's
      // audience preview) that the selection changed.
      if (field.value !== before) {
        field.dispatchEvent(new Event("change", { bubbles: true }));
      }
      // The field's placeholder (an example of what to type) only while it is empty.
      input.placeholder = tokens.length ? "" : field.placeholder;
      box.querySelectorAll("[data-token]").forEach(function (chip) { chip.remove(); });
      tokens.forEach(function (token, index) {
        var choice = labels[token];
        var chip = document.createElement("span");
        chip.className = "badge rounded-pill d-inline-flex align-items-center gap-1 " +
          (choice ? "text-bg-secondary" : "text-bg-light border");
        chip.dataset.token = token;
        chip.textContent = choice ? choice.label : token.replace(/^address:/, "");
        if (choice) chip.title = choice.kind_label + (choice.detail ? ": " + choice.detail : "");
        var remove = document.createElement("button");
        remove.type = "button";
        remove.className = "btn-close btn-close-white token-remove";
        if (!choice) remove.className = "btn-close token-remove";
        remove.setAttribute("aria-label", (field.dataset.removeLabel || "Remove") + ": " + chip.textContent);
        remove.addEventListener("click", function () {
          tokens.splice(index, 1);
          sync();
          input.focus();
        });
        chip.appendChild(remove);
        box.insertBefore(chip, input);
      });
    }

    function add(token, choice) {
      token = token.trim();
      if (!token) return;
      if (choice) labels[token] = choice;
      if (single) tokens = [];
      if (tokens.indexOf(token) === -1) tokens.push(token);
      input.value = "";
      hideMenu();
      sync();
    }

    // Whatever is left typed becomes a token, so nothing typed is lost.
    function commitTyped() {
      splitTokens(input.value).forEach(function (token) { add(token); });
      input.value = "";
    }

    function hideMenu() {
      menu.classList.add("d-none");
      menu.textContent = "";
    }

    function showResults(results) {
      menu.textContent = "";
      results.forEach(function (choice) {
        var item = document.createElement("button");
        item.type = "button";
        item.className = "list-group-item list-group-item-action";
        item.setAttribute("role", "option");
        item.dataset.option = choice.token;
        var label = document.createElement("span");
        label.textContent = choice.label;
        var detail = document.createElement("small");
        detail.className = "text-body-secondary ms-2";
        detail.textContent = choice.kind_label + (choice.detail ? " · " + choice.detail : "");
        item.appendChild(label);
        item.appendChild(detail);
        // mousedown, not click: the input's blur would otherwise come first.
        item.addEventListener("mousedown", function (event) {
          event.preventDefault();
          add(choice.token, choice);
        });
        menu.appendChild(item);
      });
      menu.classList.toggle("d-none", results.length === 0);
    }

    var timer = null, serial = 0;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      var query = input.value.trim();
      if (query.length < 2) { hideMenu(); return; }
      timer = setTimeout(function () {
        var mine = ++serial;
        var params = { q: query, limit: "10" };
        if (audiences) params.audiences = "1";
        fetch(url + "?" + new URLSearchParams(params), {
          credentials: "same-origin",
          headers: { Accept: "application/json" }
        })
          .then(function (response) { return response.ok ? response.json() : { results: [] }; })
          .then(function (data) { if (mine === serial) showResults(data.results || []); })
          .catch(hideMenu);
      }, 200);
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === "," || event.key === ";") {
        event.preventDefault();
        var first = menu.querySelector("[data-option]");
        if (event.key === "Enter" && first && !menu.classList.contains("d-none")) {
          first.dispatchEvent(new MouseEvent("mousedown", { cancelable: true }));
        } else {
          commitTyped();
        }
      } else if (event.key === "Backspace" && !input.value && tokens.length) {
        tokens.pop();
        sync();
      } else if (event.key === "Escape") {
        hideMenu();
      }
    });
    input.addEventListener("blur", function () {
      commitTyped();
      hideMenu();
    });
    if (field.form) field.form.addEventListener("submit", commitTyped);
    box.addEventListener("click", function (event) {
      if (event.target === box) input.focus();
    });
    sync();
  }

  function init() {
    document.querySelectorAll("input[data-recipient-picker]").forEach(setupTokens);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
