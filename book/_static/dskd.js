// Every figure that a notebook cell drew opens full size on a click (loaded through html_js_files in
// _config.yml): the book shows figures at the column's width, which is enough to read them, and the
// full-size file is one click away for a projector or a closer look.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".cell_output img").forEach((img) => {
    if (img.closest("a") || img.closest(".dskd-player")) return;  // already a link; an explorer's frame
    const link = document.createElement("a");
    link.href = img.getAttribute("src");
    link.className = "dskd-figure-link";
    link.title = "Open the figure full size";
    img.parentNode.insertBefore(link, img);
    link.appendChild(img);
  });
});
