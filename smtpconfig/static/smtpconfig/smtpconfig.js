// SMTP configuration form: show only the fields of the chosen sign-in method and fill in
// the provider's server when one is chosen. Wired through data attributes (the CSP
// forbids inline scripts); without this script every field shows and the server checks
// what the method needs.
(function () {
  "use strict";

  var PRESETS = {
    microsoft: { host: "smtp.office365.com", port: "587", security: "starttls" },
    google: { host: "smtp.gmail.com", port: "587", security: "starttls" }
  };

  function presetHosts() {
    return Object.keys(PRESETS).map(function (key) { return PRESETS[key].host; });
  }

  function setup(form) {
    var smtpAuth = form.querySelector("input[name=smtp_auth]");
    var method = form.querySelector("select[name=auth_method]");
    var mailer = form.querySelector("select[name=mailer]");
    if (!smtpAuth || !method) {
      return;
    }
    var groups = form.querySelectorAll("[data-auth-methods]");

    function update() {
      var isSmtp = !mailer || mailer.value === "smtp";
      var chosen = isSmtp && smtpAuth.checked ? method.value : "";
      groups.forEach(function (group) {
        var methods = group.getAttribute("data-auth-methods").split(" ");
        group.hidden = methods.indexOf(chosen) === -1;
      });
    }

    function applyPreset() {
      var preset = PRESETS[method.value];
      var host = form.querySelector("input[name=host]");
      if (!preset || !host) {
        return;
      }
      // Only an empty host or another provider's is replaced: a relay typed in stays.
      if (host.value === "" || presetHosts().indexOf(host.value.trim().toLowerCase()) !== -1) {
        host.value = preset.host;
        var port = form.querySelector("input[name=port]");
        var security = form.querySelector("select[name=security]");
        if (port) { port.value = preset.port; }
        if (security) { security.value = preset.security; }
      }
    }

    smtpAuth.addEventListener("change", update);
    if (mailer) { mailer.addEventListener("change", update); }
    method.addEventListener("change", function () {
      applyPreset();
      update();
    });
    update();
  }

  function init() {
    var field = document.querySelector("select[name=auth_method]");
    if (field && field.form) {
      setup(field.form);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
