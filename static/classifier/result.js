// The result page, for people who cannot see the note: the answer is put in
// an aria-live region once the page has loaded (so screen readers announce it
// without the user hunting for it), and it can be spoken aloud with the
// browser's own speech synthesis, on request or, if the user opted in, at once.
(function () {
  "use strict";

  var box = document.getElementById("speech");
  var announcer = document.getElementById("announcer");
  if (!box || !announcer) return;
  var sentence = box.dataset.speech;
  var AUTO_KEY = "usbills.speakAutomatically";

  // A live region announces changes, not what was there at load: fill it a
  // moment after the page is ready.
  window.setTimeout(function () {
    announcer.textContent = sentence;
  }, 300);

  if (!("speechSynthesis" in window) || typeof SpeechSynthesisUtterance !== "function") return;
  box.hidden = false;
  var button = document.getElementById("speak-button");
  var auto = document.getElementById("speak-auto");

  function speak() {
    window.speechSynthesis.cancel();
    var utterance = new SpeechSynthesisUtterance(sentence);
    utterance.lang = document.documentElement.lang || "en-US";
    window.speechSynthesis.speak(utterance);
  }

  function stored() {
    try {
      return window.localStorage.getItem(AUTO_KEY) === "1";
    } catch (e) {
      return false; // storage blocked: the choice just is not remembered
    }
  }

  button.addEventListener("click", speak);
  auto.checked = stored();
  auto.addEventListener("change", function () {
    try {
      window.localStorage.setItem(AUTO_KEY, auto.checked ? "1" : "0");
    } catch (e) {
      /* not remembered; still applies to this page */
    }
    if (auto.checked) speak();
  });
  if (auto.checked) speak();
})();
