// Keyboard readers reach what scrolls: a code block, a wide table or a notebook output wider than
// its box can be focused (tabindex 0) and then scrolled with the arrow keys. Which boxes scroll
// depends on the window, so the marks follow a resize; mkdocs-material wraps tables at load.
(() => {
  const FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]";
  const mark = () => {
    for (const el of document.querySelectorAll(".md-content *")) {
      if (el.scrollWidth <= el.clientWidth + 1 && el.scrollHeight <= el.clientHeight + 1) continue;
      const style = getComputedStyle(el);
      const scrolls = /auto|scroll/.test(style.overflowX + style.overflowY);
      if (scrolls && !el.hasAttribute("tabindex") && !el.querySelector(FOCUSABLE)) {
        el.setAttribute("tabindex", "0");
      }
    }
  };
  let pending = 0;
  const later = () => { clearTimeout(pending); pending = setTimeout(mark, 150); };
  mark();
  window.addEventListener("load", mark);
  window.addEventListener("resize", later);
  if (window.document$) window.document$.subscribe(() => setTimeout(mark, 0));
})();
