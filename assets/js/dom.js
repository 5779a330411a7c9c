// Tiny DOM helpers. Everything that comes from the network is inserted as
// text nodes (never parsed as HTML).

/**
 * Create an element.
 *   h('p', { class: 'x', 'aria-label': 'y', onclick: fn }, 'text', childNode)
 * Strings and numbers become text nodes; null/false children are skipped.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value == null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = String(value);
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key === 'hidden') el.hidden = Boolean(value);
      else if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value);
      } else if (key === 'style') {
        throw new Error('inline style attributes are not allowed (CSP)');
      } else if (value === true) el.setAttribute(key, '');
      else el.setAttribute(key, String(value));
    }
  }
  appendChildren(el, children);
  return el;
}

export function appendChildren(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** Remove every child of an element. */
export function clear(el) {
  el.replaceChildren();
  return el;
}

/** Replace an element's content with plain text. */
export function setText(el, text) {
  el.textContent = text == null ? '' : String(text);
  return el;
}

export const prefersReducedMotion = () =>
  window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;
