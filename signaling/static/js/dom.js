// A small element builder shared by the consoles and the admin pages.
// el("button", {class: "x", text: "OK", onclick: fn}, child, …): `class` sets the class
// name, `text` the text content, `on…` adds an event listener, anything else an attribute.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}
