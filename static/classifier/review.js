// The review screen: one key per label. Each button carries its key in
// data-key; pressing it submits that button, and the next photo follows.
(function () {
  "use strict";

  var form = document.getElementById("review-form");
  if (!form) return;
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    var target = event.target;
    if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) return;
    var button = form.querySelector('button[data-key="' + event.key.toLowerCase() + '"]');
    if (!button || button.disabled) return;
    event.preventDefault();
    form.querySelectorAll("button").forEach(function (b) {
      b.disabled = b !== button; // one answer per photo, even with a quick double press
    });
    if (typeof form.requestSubmit === "function") {
      form.requestSubmit(button);
    } else {
      button.click();
    }
  });
})();
