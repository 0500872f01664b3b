// credo: a little JavaScript where it helps; every page works without it.
// Upload with a progress bar: the form posts as usual when this script is absent.
(function () {
  "use strict";
  document.querySelectorAll("form[data-upload]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.XMLHttpRequest || !window.FormData) { return; }
      event.preventDefault();
      var box = form.querySelector(".progress");
      var bar = form.querySelector("progress");
      var text = form.querySelector(".progress-text");
      var button = form.querySelector("button[type=submit]");
      var target = document.getElementById("upload-result");
      var xhr = new XMLHttpRequest();
      box.hidden = false;
      bar.value = 0;
      button.disabled = true;
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          var pct = Math.round((100 * e.loaded) / e.total);
          bar.value = pct;
          text.textContent = pct + "%";
        }
      });
      xhr.upload.addEventListener("load", function () {
        bar.value = 100;
        text.textContent = form.dataset.processing || "100%";
        bar.removeAttribute("value"); // indeterminate while the server checks the rows
      });
      xhr.addEventListener("load", function () {
        button.disabled = false;
        box.hidden = true;
        target.innerHTML = xhr.responseText;
        var result = target.querySelector(".upload-result");
        if (result) { result.focus(); }
      });
      xhr.addEventListener("error", function () {
        button.disabled = false;
        text.textContent = form.dataset.failed || "upload failed";
      });
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-Credo-Fragment", "1");
      xhr.send(new FormData(form));
    });
  });
})();
