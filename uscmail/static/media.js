// uscmail media picker (compose page): choosing a library image inserts it at the cursor in the body, as Markdown or
// HTML as the body format says, with its alt text; the live preview then follows as it does for typing. Without this
// file the picker shows each image's Markdown to copy.
"use strict";

(() => {
  const picker = document.getElementById("media-picker");
  const body = picker && document.getElementById(picker.dataset.target);
  if (!body) return;
  const status = picker.querySelector(".media-picker-status");

  const escapeHtml = (text) =>
    text.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  // Markdown image text: a backslash or bracket would end it early.
  const escapeMarkdown = (text) => text.replace(/[\\[\]]/g, "\\$&");
  const bodyFormat = () => {
    const checked = body.form && body.form.querySelector('input[name="body_format"]:checked');
    return checked ? checked.value : "markdown";
  };
  const snippet = (url, alt) =>
    bodyFormat() === "html"
      ? `<img src="${escapeHtml(url)}" alt="${escapeHtml(alt)}">`
      : `![${escapeMarkdown(alt)}](${url})`;

  // Until the organiser has been in the body, there is no cursor to speak of: the image goes at the end.
  let cursorKnown = false;
  body.addEventListener("focus", () => { cursorKnown = true; });

  const insert = (text) => {
    let start = body.selectionStart;
    let end = body.selectionEnd;
    if (!cursorKnown) {
      start = end = body.value.length;
      if (body.value.trim() !== "") text = (body.value.endsWith("\n") ? "\n" : "\n\n") + text;
    }
    body.focus();
    body.setRangeText(text, start, end, "end");
    body.dispatchEvent(new Event("input", { bubbles: true }));
  };

  for (const button of picker.querySelectorAll(".media-insert")) {
    button.hidden = false;
    button.addEventListener("click", () => {
      insert(snippet(button.dataset.url, button.dataset.alt));
      if (status) status.textContent = `Inserted “${button.dataset.alt}” into the body.`;
    });
  }
  picker.classList.add("media-picker-ready");
})();
