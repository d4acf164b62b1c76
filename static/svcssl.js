// svcssl: small conveniences; every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // An error summary takes the focus, so keyboard and screen-reader users start there.
  var summary = document.getElementById("error-summary");
  if (summary && document.activeElement !== summary) { summary.focus(); }
});
// Escape closes the disclosure (a <details>: Why, +N more, the PEM) that holds the focus, and gives the focus
// back to its summary.
document.addEventListener("keydown", function (event) {
  if (event.key !== "Escape") { return; }
  var open = document.activeElement && document.activeElement.closest("details[open]");
  if (!open) { return; }
  open.open = false;
  var label = open.querySelector("summary");
  if (label) { label.focus(); }
  event.preventDefault();
});
