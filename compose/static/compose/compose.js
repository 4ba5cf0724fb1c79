// The compose form's small rich-text editor (the recipient fields are the shared picker,
// static/js/recipient-picker.js). Plain JavaScript wired through data attributes (the CSP
// forbids inline script). Without JavaScript the field stays a textarea of HTML.
(function () {
  "use strict";

  // --- rich-text editor ---------------------------------------------------------------
  // <textarea data-rich-editor> holds the HTML; an editable area with a toolbar edits it.

  var COMMANDS = [
    ["bold", "type-bold"],
    ["italic", "type-italic"],
    ["underline", "type-underline"],
    ["insertUnorderedList", "list-ul"],
    ["insertOrderedList", "list-ol"],
    ["createLink", "link-45deg"],
    ["removeFormat", "eraser"]
  ];

  function setupEditor(textarea) {
    var labels = {};
    try { labels = JSON.parse(textarea.dataset.labels || "{}"); } catch (e) { /* English names */ }
    var toolbar = document.createElement("div");
    toolbar.className = "btn-toolbar gap-1 mb-1";
    toolbar.setAttribute("role", "toolbar");
    var editor = document.createElement("div");
    editor.className = "form-control rich-editor";
    editor.contentEditable = "true";
    editor.setAttribute("role", "textbox");
    editor.setAttribute("aria-multiline", "true");
    editor.dataset.editorFor = textarea.name;
    editor.innerHTML = textarea.value;
    COMMANDS.forEach(function (entry) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "btn btn-sm btn-outline-secondary";
      button.title = labels[entry[0]] || entry[0];
      button.setAttribute("aria-label", button.title);
      var icon = document.createElement("i");
      icon.className = "bi bi-" + entry[1];
      icon.setAttribute("aria-hidden", "true");
      button.appendChild(icon);
      button.addEventListener("mousedown", function (event) { event.preventDefault(); });
      button.addEventListener("click", function () {
        var value = null;
        if (entry[0] === "createLink") {
          value = window.prompt(labels.url || "URL", "https://");
          if (!value) return;
        }
        document.execCommand(entry[0], false, value);
        sync();
      });
      toolbar.appendChild(button);
    });
    function sync() { textarea.value = editor.innerHTML; }
    editor.addEventListener("input", sync);
    if (textarea.form) textarea.form.addEventListener("submit", sync);
    textarea.classList.add("d-none");
    textarea.parentNode.insertBefore(toolbar, textarea);
    textarea.parentNode.insertBefore(editor, textarea);
    if (textarea.classList.contains("is-invalid")) editor.classList.add("is-invalid");
  }

  // --- sender follows the SMTP configuration ----------------------------------------------
  // Each option carries its configuration's sender (data-from-email). Changing the
  // configuration replaces the From address when it still is the previous configuration's
  // sender; an address the user typed (or a template set) stays. The server does the same.

  function setupSender(select) {
    var input = select.form && select.form.querySelector("input[name=from_email]");
    if (!input) return;
    function senderOf(option) { return option ? option.dataset.fromEmail || "" : ""; }
    var previous = senderOf(select.options[select.selectedIndex]);
    select.addEventListener("change", function () {
      var next = senderOf(select.options[select.selectedIndex]);
      var typed = input.value.trim().toLowerCase();
      if (typed && previous && typed === previous.toLowerCase()) input.value = next;
      previous = next;
    });
  }

  function init() {
    document.querySelectorAll("textarea[data-rich-editor]").forEach(setupEditor);
    document.querySelectorAll("select[data-sender-source]").forEach(setupSender);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
