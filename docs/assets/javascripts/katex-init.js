// Render the maths that pymdownx.arithmatex (generic mode) leaves in \( ... \) and \[ ... \] spans,
// with the KaTeX copy under assets/katex (no network needed). Material's instant navigation re-runs it.
function renderMaths() {
  document.querySelectorAll(".arithmatex").forEach(function (element) {
    renderMathInElement(element, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  });
}
if (typeof document$ !== "undefined") {
  document$.subscribe(renderMaths);
} else {
  document.addEventListener("DOMContentLoaded", renderMaths);
}
