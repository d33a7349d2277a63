// editor.js: a plain textarea with a line-number gutter, for the policies
// view. The gutter scrolls with the text and marks lines: problems, the
// lines tests covered and did not cover, and the line last jumped to. No
// editor library: the textarea keeps the browser's own editing, undo and
// accessibility.
//
// Tab inserts a tab (Rego is indented with tabs, as opa fmt writes it);
// Escape and then Tab leave the editor, as does Shift+Tab, so the keyboard
// is never trapped.

export class Editor {
  // text is the textarea, gutter the element that holds the line numbers,
  // caret an element told the caret's line and column.
  constructor(text, gutter, caret, onEdit) {
    this.text = text;
    this.gutter = gutter;
    this.caret = caret;
    this.onEdit = onEdit;
    this.lines = 0;
    this.escaped = false;
    this.marks = new Map(); // line -> {cls: Set of classes, notes: []}
    text.addEventListener("input", () => this.edited());
    text.addEventListener("scroll", () => this.syncScroll());
    text.addEventListener("keydown", (ev) => this.keydown(ev));
    for (const type of ["keyup", "click", "select", "focus"]) {
      text.addEventListener(type, () => this.showCaret());
    }
  }

  // show puts text in the editor, replacing what it held, with no marks.
  // view is where the caret and the scroll were (from view()), to return
  // to a file where the admin left it.
  show(value, readOnly, view = { top: 0, left: 0, start: 0, end: 0 }) {
    this.text.value = value;
    this.text.readOnly = readOnly;
    this.text.setSelectionRange(view.start, view.end);
    this.text.scrollTop = view.top;
    this.text.scrollLeft = view.left;
    this.marks.clear();
    this.renumber(true);
    this.showCaret();
  }

  // view is the caret and scroll position, for show.
  view() {
    const t = this.text;
    return { top: t.scrollTop, left: t.scrollLeft, start: t.selectionStart, end: t.selectionEnd };
  }

  // mark sets the marks of the open file: lines is a Map of line number to
  // {cls: [...class names], notes: [...text]}; the notes become the line's
  // tooltip.
  mark(lines) {
    this.marks = lines;
    this.renumber(true);
  }

  // goTo moves the caret to row and col (1-based) and brings the line into
  // view, marking it until the next jump.
  goTo(row, col) {
    const lines = this.text.value.split("\n");
    row = Math.min(Math.max(row || 1, 1), lines.length);
    let offset = 0;
    for (let i = 0; i < row - 1; i++) offset += lines[i].length + 1;
    offset += Math.min(Math.max((col || 1) - 1, 0), lines[row - 1].length);
    this.text.focus();
    this.text.setSelectionRange(offset, offset);
    const lh = parseFloat(getComputedStyle(this.text).lineHeight) || 20;
    this.text.scrollTop = Math.max(0, (row - 1) * lh - this.text.clientHeight / 3);
    for (const n of this.gutter.querySelectorAll(".here")) n.classList.remove("here");
    this.gutter.children[row - 1]?.classList.add("here");
    this.syncScroll();
    this.showCaret();
  }

  edited() {
    this.renumber(false);
    this.showCaret();
    this.onEdit(this.text.value);
  }

  keydown(ev) {
    if (ev.key === "Escape") {
      this.escaped = true;
      return;
    }
    const plainTab = ev.key === "Tab" && !ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.metaKey;
    if (plainTab && !this.escaped && !this.text.readOnly) {
      ev.preventDefault();
      this.text.setRangeText("\t", this.text.selectionStart, this.text.selectionEnd, "end");
      this.edited();
    }
    this.escaped = false;
  }

  // renumber keeps one gutter line per text line. Marks are redrawn when
  // asked (force) or when the line count changed.
  renumber(force) {
    const count = this.text.value.split("\n").length;
    if (!force && count === this.lines) return;
    this.lines = count;
    const rows = [];
    for (let i = 1; i <= count; i++) {
      const n = document.createElement("span");
      n.textContent = String(i);
      const m = this.marks.get(i);
      if (m) {
        n.classList.add(...m.cls);
        if (m.notes.length) n.title = m.notes.join("\n");
      }
      rows.push(n);
    }
    const end = document.createElement("span");
    end.className = "end"; // room for the textarea's horizontal scrollbar
    this.gutter.replaceChildren(...rows, end);
    this.syncScroll();
  }

  syncScroll() {
    this.gutter.scrollTop = this.text.scrollTop;
  }

  showCaret() {
    const before = this.text.value.slice(0, this.text.selectionStart);
    const row = before.split("\n").length;
    const col = before.length - before.lastIndexOf("\n");
    this.caret.textContent = `Line ${row}, column ${col}`;
  }
}
