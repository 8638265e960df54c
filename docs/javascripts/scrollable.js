// Keyboard readers reach what scrolls: a code block, a wide table, a picture or a notebook output
// wider than its box can be focused (tabindex 0) and then scrolled with the arrow keys. Which
// boxes scroll depends on the window, so the marks follow a resize; mkdocs-material wraps tables
// at load. Measuring a box lays out the cell around it (long runbook pages lay out only what is
// near the window, layout.css), so the boxes are measured in slices of 8 ms between other work:
// the page answers input meanwhile, and no slice is a long task on a phone four times slower
// (Lighthouse mobile: 30 ms slices were 120 ms tasks; runbook 07's blocking time 236 -> 132 ms). <html data-scrollables="marked"> says the pass is done.
// A box that scrolls sideways also says on which side more is hidden (data-scroll-more "left",
// "right" or both; layout.css fades that edge), so on a phone a cut-off column reads as "scroll
// for more", not as lost text; the mark follows the box's scrolling.
(() => {
  const CANDIDATES = ".md-content :is(pre, code, table, figure, .highlight, .highlight-ipynb, .md-typeset__scrollwrap, .jp-OutputArea-output)";
  const FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]";
  const root = document.documentElement;
  let pass = 0;
  const watched = new WeakSet();
  const edges = el => {
    const more = [];
    if (el.scrollLeft > 1) more.push("left");
    if (el.scrollLeft + el.clientWidth < el.scrollWidth - 1) more.push("right");
    if (more.length) el.setAttribute("data-scroll-more", more.join(" "));
    else el.removeAttribute("data-scroll-more");
  };
  const check = el => {
    const wide = el.scrollWidth > el.clientWidth + 1;
    if (!wide && el.scrollHeight <= el.clientHeight + 1) {
      if (watched.has(el)) edges(el);  // a resize made it fit
      return;
    }
    const style = getComputedStyle(el);
    if (!/auto|scroll/.test(style.overflowX + style.overflowY)) return;
    if (!el.hasAttribute("tabindex") && !el.querySelector(FOCUSABLE)) el.setAttribute("tabindex", "0");
    if (wide && /auto|scroll/.test(style.overflowX) && !watched.has(el)) {
      watched.add(el);
      el.addEventListener("scroll", () => edges(el), {passive: true});
    }
    if (watched.has(el)) edges(el);
  };
  const mark = () => {
    const mine = ++pass, queue = [...document.querySelectorAll(CANDIDATES)];
    root.removeAttribute("data-scrollables");
    const slice = () => {
      if (mine !== pass) return;  // a newer pass (resize, navigation) took over
      const end = performance.now() + 8;
      while (queue.length && performance.now() < end) check(queue.shift());
      if (queue.length) setTimeout(slice, 0); else root.setAttribute("data-scrollables", "marked");
    };
    slice();
  };
  let pending = 0;
  window.addEventListener("load", mark);
  window.addEventListener("resize", () => { clearTimeout(pending); pending = setTimeout(mark, 150); });
  if (window.document$) window.document$.subscribe(() => setTimeout(mark, 0));
  else mark();
})();
