// Mounts the document engineer's panel (/static/common/js/document-panel.js) in a call view
// when it is there; the call works without it.

let loaded = null;

function loadPanelModule() {
  if (!loaded) {
    loaded = import("/static/common/js/document-panel.js").catch(() => null);
  }
  return loaded;
}

/**
 * Mount the panel into `container` for `options` ({socket, call, participantId, role}).
 * Returns a handle whose `destroy()` unmounts it; `ready` resolves to true when a panel came up.
 */
export function mountDocumentPanel(container, options) {
  const handle = { panel: null, destroyed: false };
  handle.ready = loadPanelModule().then((module) => {
    if (!module || handle.destroyed) return false;
    const factory = module.mountDocumentPanel || module.default;
    if (typeof factory !== "function") return false;
    try {
      handle.panel = factory(container, options);
      // The panel shows its own error; a call that ends while it starts is no page error.
      if (handle.panel && handle.panel.ready && handle.panel.ready.catch) {
        handle.panel.ready.catch((error) => console.warn("document panel:", error.message));
      }
      container.closest(".documents-panel")?.classList.add("active");
      return true;
    } catch (error) {
      console.error("document panel failed", error);
      return false;
    }
  });
  handle.destroy = () => {
    handle.destroyed = true;
    if (handle.panel && typeof handle.panel.destroy === "function") handle.panel.destroy();
    container.replaceChildren();
    container.closest(".documents-panel")?.classList.remove("active");
  };
  return handle;
}
