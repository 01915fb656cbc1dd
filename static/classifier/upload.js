// The upload page: drag and drop, the phone camera, a preview, a size check
// before sending, and a visible "working" state while the photo uploads.
// The form works without this script; it only makes it friendlier.
(function () {
  "use strict";

  var form = document.getElementById("upload-form");
  if (!form) return;
  var input = document.getElementById("id_image");
  var camera = document.getElementById("camera");
  var cameraPicker = document.getElementById("camera-picker");
  var dropzone = document.getElementById("dropzone");
  var preview = document.getElementById("preview");
  var fileName = document.getElementById("file-name");
  var clientError = document.getElementById("client-error");
  var submit = document.getElementById("submit-button");
  var working = document.getElementById("working");
  var maxBytes = parseInt(form.dataset.maxBytes, 10) || 0;
  var previewUrl = null;

  function showError(message) {
    clientError.textContent = message;
    clientError.hidden = !message;
  }

  function megabytes(bytes) {
    if (bytes < 1024 * 1024) return Math.max(1, Math.round(bytes / 1024)) + " KB";
    return (bytes / (1024 * 1024)).toFixed(1) + " MB";
  }

  // Checks what can be checked here; the server checks the content again.
  function chosen(file) {
    showError("");
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    preview.hidden = true;
    fileName.textContent = "";
    if (!file) return;
    fileName.textContent = file.name + " (" + megabytes(file.size) + ")";
    if (maxBytes && file.size > maxBytes) {
      showError("This file is too large: the limit is " + megabytes(maxBytes) + ".");
      return;
    }
    if (file.type && file.type.indexOf("image/") !== 0) {
      showError("This file does not look like a photo. Please choose an image.");
      return;
    }
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
    preview.hidden = false;
  }

  // Put a file picked elsewhere (camera, drop) into the one field the form sends.
  function useFiles(files) {
    if (!files || !files.length) return;
    try {
      var transfer = new DataTransfer();
      transfer.items.add(files[0]);
      input.files = transfer.files;
    } catch (e) {
      showError("Your browser cannot take this file here: use \u201cChoose a photo\u201d.");
      return;
    }
    chosen(input.files[0]);
  }

  input.addEventListener("change", function () {
    chosen(input.files[0]);
  });

  if (camera && cameraPicker && typeof DataTransfer === "function") {
    cameraPicker.hidden = false;
    camera.addEventListener("change", function () {
      useFiles(camera.files);
      camera.value = "";
    });
  }

  ["dragenter", "dragover"].forEach(function (type) {
    dropzone.addEventListener(type, function (event) {
      event.preventDefault();
      dropzone.classList.add("dragging");
    });
  });
  ["dragleave", "dragend", "drop"].forEach(function (type) {
    dropzone.addEventListener(type, function () {
      dropzone.classList.remove("dragging");
    });
  });
  dropzone.addEventListener("drop", function (event) {
    event.preventDefault();
    useFiles(event.dataTransfer && event.dataTransfer.files);
  });

  form.addEventListener("submit", function (event) {
    var file = input.files[0];
    if (!file) {
      event.preventDefault();
      showError("Choose a photo first.");
      return;
    }
    if (maxBytes && file.size > maxBytes) {
      event.preventDefault();
      showError("This file is too large: the limit is " + megabytes(maxBytes) + ".");
      return;
    }
    submit.disabled = true;
    working.hidden = false;
  });

  // Coming back with the browser's back button must not leave the page stuck.
  window.addEventListener("pageshow", function () {
    submit.disabled = false;
    working.hidden = true;
  });
})();
