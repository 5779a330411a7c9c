// Draws a QR code that the server encoded ({size, modules}: `size × size` characters, row by
// row, "1" for a dark module) as an SVG image, built node by node: one light square with the
// quiet zone around it and one <path> holding every dark module. Nothing leaves the browser.

const SVG = 'http://www.w3.org/2000/svg';
/** Light modules around the code, as the QR standard asks for. */
const QUIET = 4;

/** Is `qr` a square matrix of modules we can draw? */
export function isQr(qr) {
  return Boolean(qr) && Number.isInteger(qr.size) && qr.size >= 21 && qr.size <= 177
    && typeof qr.modules === 'string' && qr.modules.length === qr.size * qr.size
    && /^[01]+$/.test(qr.modules);
}

/** The `d` of a path with one rectangle per horizontal run of dark modules. */
function pathData(qr) {
  const parts = [];
  for (let y = 0; y < qr.size; y++) {
    const row = qr.modules.slice(y * qr.size, (y + 1) * qr.size);
    let x = 0;
    while (x < qr.size) {
      if (row[x] !== '1') { x++; continue; }
      let run = 1;
      while (x + run < qr.size && row[x + run] === '1') run++;
      parts.push(`M${x} ${y}h${run}v1h-${run}z`);
      x += run;
    }
  }
  return parts.join('');
}

/**
 * An <svg role="img"> showing `qr`, named `label` for screen readers; `null` when `qr` is not
 * a matrix of modules.
 * @param {{size:number, modules:string}} qr
 * @param {string} label
 */
export function qrSvg(qr, label) {
  if (!isQr(qr)) return null;
  const side = qr.size + QUIET * 2;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'qr-code');
  svg.setAttribute('viewBox', `${-QUIET} ${-QUIET} ${side} ${side}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  svg.setAttribute('shape-rendering', 'crispEdges');
  const light = document.createElementNS(SVG, 'rect');
  light.setAttribute('x', String(-QUIET));
  light.setAttribute('y', String(-QUIET));
  light.setAttribute('width', String(side));
  light.setAttribute('height', String(side));
  light.setAttribute('fill', '#ffffff');
  const dark = document.createElementNS(SVG, 'path');
  dark.setAttribute('d', pathData(qr));
  dark.setAttribute('fill', '#000000');
  svg.append(light, dark);
  return svg;
}
