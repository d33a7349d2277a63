// dom.js: small helpers that build elements from text. Data from the API
// only ever reaches the page through textContent, never as HTML.

// el returns a new element with the given class (if any) and text.
export function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (className) e.className = className;
  return e;
}

// row returns a table row of cells; a cell is text or [text, className].
export function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const [text, cls] = Array.isArray(c) ? c : [c, ""];
    tr.append(el("td", text, cls));
  }
  return tr;
}

// show shows or hides an element and sets its text.
export function say(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

export function $(id) {
  return document.getElementById(id);
}
