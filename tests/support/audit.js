// An accessibility audit run in the page by tests/e2e/test_pages.py (axe-core is not installed here): every
// visible form control has a label; images have alt text; landmarks and lang exist; ids are unique; and the
// text of every visible element with its own text has WCAG AA contrast against the background drawn under it.
() => {
  const problems = [];
  const visible = (el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none"; };
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden" || el.hidden) continue;
    const named = (el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!named) problems.push("no label: " + (el.name || el.id));
  }
  for (const img of document.querySelectorAll("img")) if (!img.hasAttribute("alt")) problems.push("no alt: " + img.src);
  if (!document.querySelector("main")) problems.push("no main landmark");
  if (!document.querySelector("header")) problems.push("no banner");
  if (!document.documentElement.lang) problems.push("no lang");
  const ids = {};
  for (const el of document.querySelectorAll("[id]")) { if (ids[el.id]) problems.push("duplicate id: " + el.id); ids[el.id] = 1; }
  const rgb = (value) => { const m = value.match(/[\d.]+/g); return m ? m.map(Number) : [0, 0, 0, 0]; };
  const lum = ([r, g, b]) => { const c = [r, g, b].map(v => { v /= 255; return v <= .03928 ? v / 12.92 : ((v + .055) / 1.055) ** 2.4; });
    return .2126 * c[0] + .7152 * c[1] + .0722 * c[2]; };
  const background = (el) => { for (let n = el; n; n = n.parentElement) { const c = rgb(getComputedStyle(n).backgroundColor);
    if (c.length < 4 || c[3] > 0.9) return c; } return [255, 255, 255]; };
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !visible(el) || el.closest(".visually-hidden, .skip-link, svg")) continue;
    const style = getComputedStyle(el);
    const fg = rgb(style.color), bg = background(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + .05) / (b + .05);
    const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && +style.fontWeight >= 700);
    if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)}: ${el.tagName} "${el.textContent.trim().slice(0, 40)}"`);
  }
  return problems;
}
