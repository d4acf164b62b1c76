// svcssl: small conveniences; every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // An error summary (role="alert") takes the focus, so keyboard and screen-reader users start there.
  var summary = document.getElementById("error-summary");
  if (summary && document.activeElement !== summary) { summary.focus(); }
});
