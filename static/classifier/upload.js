// The upload page: drag and drop, the phone camera, a preview, a size check
// before sending, a photo shrunk in the browser before it is sent, and upload
// progress in percent. The form works without this script, and without canvas
// the original file is sent as it is.
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
  var workingText = document.getElementById("working-text");
  var progress = document.getElementById("progress");
  var progressBar = document.getElementById("progress-bar");
  var progressText = document.getElementById("progress-text");
  var maxBytes = parseInt(form.dataset.maxBytes, 10) || 0;
  var previewUrl = null;
  // The model looks at 224 pixels; 1600 keeps every detail a reviewer needs
  // and turns a 5 MB phone photo into a few hundred KB on a slow line.
  var MAX_SIDE = 1600;
  var SHRINKABLE = ["image/jpeg", "image/png", "image/webp"];

  // The app says what is missing, not the browser's own bubble.
  form.noValidate = true;

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
    fileName.appendChild(document.createTextNode(file.name + " "));
    var size = document.createElement("span");
    size.className = "file-size";
    size.textContent = "(" + megabytes(file.size) + ")";
    fileName.appendChild(size);
    if (maxBytes && file.size > maxBytes && !canShrink(file)) {
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

  var canvasWorks =
    typeof window.createImageBitmap === "function" &&
    typeof HTMLCanvasElement !== "undefined" &&
    typeof HTMLCanvasElement.prototype.toBlob === "function" &&
    typeof FormData === "function" &&
    typeof XMLHttpRequest === "function";

  function canShrink(file) {
    return canvasWorks && SHRINKABLE.indexOf(file.type) !== -1;
  }

  // A smaller JPEG of the photo, upright, at most MAX_SIDE across; the
  // original when that is not smaller or the browser cannot decode it.
  function shrink(file) {
    if (!canShrink(file)) return Promise.resolve(file);
    return window
      .createImageBitmap(file, { imageOrientation: "from-image" })
      .then(function (bitmap) {
        var scale = MAX_SIDE / Math.max(bitmap.width, bitmap.height);
        if (scale >= 1) {
          bitmap.close();
          return file;
        }
        var canvas = document.createElement("canvas");
        canvas.width = Math.round(bitmap.width * scale);
        canvas.height = Math.round(bitmap.height * scale);
        var ctx = canvas.getContext("2d");
        ctx.fillStyle = "#fff"; // transparent parts become white, as on the server
        ctx.fillRect(0, 0, canvas.width, canvas.height);
        ctx.imageSmoothingQuality = "high";
        ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
        bitmap.close();
        return new Promise(function (resolve) {
          canvas.toBlob(
            function (blob) {
              if (!blob || blob.size >= file.size) return resolve(file);
              var name = file.name.replace(/\.[^.]*$/, "") + ".jpg";
              resolve(new File([blob], name, { type: "image/jpeg" }));
            },
            "image/jpeg",
            0.9
          );
        });
      })
      .catch(function () {
        return file;
      });
  }

  function setProgress(percent) {
    progress.hidden = false;
    progressBar.value = percent;
    progressText.textContent = "Uploading: " + percent + "%";
  }

  function done(message) {
    submit.disabled = false;
    working.hidden = true;
    progress.hidden = true;
    showError(message);
  }

  // The server's own words for a refused photo, from the page it sent back.
  function errorFrom(xhr) {
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var el =
        doc.querySelector("#image-errors p, .upload-form .error p") ||
        (xhr.status !== 200 && doc.querySelector("main p, body p"));
      if (el && el.textContent.trim()) return el.textContent.trim();
    } catch (e) {
      /* fall through to the general message */
    }
    return "The photo could not be sent (error " + xhr.status + "). Please try again.";
  }

  function send(file) {
    var data = new FormData(form);
    data.set("image", file, file.name);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action || window.location.href);
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) setProgress(Math.round((100 * event.loaded) / event.total));
    });
    xhr.upload.addEventListener("load", function () {
      setProgress(100);
      workingText.textContent = "Uploaded: looking at your photo…";
    });
    xhr.addEventListener("load", function () {
      var landed = xhr.responseURL ? new URL(xhr.responseURL) : null;
      var here = new URL(form.action || window.location.href);
      if (xhr.status === 200 && landed && landed.pathname !== here.pathname) {
        // Redirected to the result page: go there.
        window.location.assign(xhr.responseURL);
        return;
      }
      done(errorFrom(xhr));
    });
    xhr.addEventListener("error", function () {
      done("The connection failed while sending the photo. Please try again.");
    });
    setProgress(0);
    xhr.send(data);
  }

  form.addEventListener("submit", function (event) {
    var file = input.files[0];
    if (!file) {
      event.preventDefault();
      showError("Choose a photo first.");
      input.focus();
      return;
    }
    if (maxBytes && file.size > maxBytes && !canShrink(file)) {
      event.preventDefault();
      showError("This file is too large: the limit is " + megabytes(maxBytes) + ".");
      return;
    }
    submit.disabled = true;
    working.hidden = false;
    if (!canvasWorks) return; // the browser sends the original, as a plain form
    event.preventDefault();
    shrink(file).then(function (small) {
      if (maxBytes && small.size > maxBytes) {
        done("This file is too large: the limit is " + megabytes(maxBytes) + ".");
        return;
      }
      send(small);
    });
  });

  // Coming back with the browser's back button must not leave the page stuck.
  window.addEventListener("pageshow", function () {
    submit.disabled = false;
    working.hidden = true;
    progress.hidden = true;
  });
})();
