// RYLA Studio: the approval queue's keys. One keystroke each:
// j / k move between items, a approves, g regenerates, r starts a rejection note, e edits the caption.
(function () {
  "use strict";
  function items() { return Array.prototype.slice.call(document.querySelectorAll(".queue .item")); }
  function current() {
    var list = items();
    var focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".queue .item");
    return focused || document.querySelector(".queue .item.focus") || list[0] || null;
  }
  function focusItem(item) {
    items().forEach(function (el) { el.classList.remove("focus"); });
    if (item) { item.classList.add("focus"); item.focus(); item.scrollIntoView({ block: "nearest" }); }
  }
  function typing(event) {
    var tag = event.target && event.target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || event.target.isContentEditable;
  }
  document.addEventListener("keydown", function (event) {
    if (!document.querySelector(".queue") || event.ctrlKey || event.metaKey || event.altKey || typing(event)) { return; }
    var item = current();
    if (!item) { return; }
    var list = items(), index = list.indexOf(item);
    if (event.key === "j" || event.key === "k") {
      focusItem(list[Math.max(0, Math.min(list.length - 1, index + (event.key === "j" ? 1 : -1)))]);
    } else if (event.key === "a" || event.key === "g") {
      var button = item.querySelector('button[data-key="' + event.key + '"]');
      if (button) { button.click(); }
    } else if (event.key === "r" || event.key === "e") {
      var field = item.querySelector('[data-key-target="' + event.key + '"]');
      if (field) { field.focus(); }
    } else { return; }
    event.preventDefault();
  });
  // Restore the focus to the item the last action came back to.
  document.addEventListener("DOMContentLoaded", function () {
    if (location.hash && document.querySelector(location.hash + ".item")) { focusItem(document.querySelector(location.hash)); }
  });
})();
