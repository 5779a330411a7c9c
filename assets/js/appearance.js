// Theme (system, light or dark) and density, kept in localStorage and applied to <html> before
// the first paint: a classic script loaded from <head> (no inline script under the CSP), so it
// runs before the body is laid out. Settings → Appearance changes them through
// window.HearthAppearance; other tabs follow through the storage event.
//
//   <html data-theme="system|light|dark">  main.css picks the palette from it
//   <html class="density-compact">         tighter message spacing
(function () {
  'use strict';

  var KEY_THEME = 'hearth.theme';
  var KEY_DENSITY = 'hearth.density';
  var THEMES = ['system', 'light', 'dark'];
  // The page background of each palette (main.css --bg), for <meta name="theme-color">.
  var BAR = { light: '#f7f3ee', dark: '#15120f' };

  function read(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return null; }
  }

  function write(key, value) {
    try { window.localStorage.setItem(key, value); } catch (e) { /* private mode: this page only */ }
  }

  /** The stored choices: {theme: 'system'|'light'|'dark', compact: boolean}. */
  function get() {
    var theme = read(KEY_THEME);
    return {
      theme: THEMES.indexOf(theme) >= 0 ? theme : 'system',
      compact: read(KEY_DENSITY) === 'compact',
    };
  }

  /** The browser bar follows the theme: both metas get its colour, or their own again. */
  function themeColor(theme) {
    var metas = document.querySelectorAll('meta[name="theme-color"]');
    for (var i = 0; i < metas.length; i++) {
      var meta = metas[i];
      if (!meta.hasAttribute('data-system')) meta.setAttribute('data-system', meta.getAttribute('content') || '');
      meta.setAttribute('content', theme === 'system' ? meta.getAttribute('data-system') : BAR[theme]);
    }
  }

  function apply(prefs) {
    var root = document.documentElement;
    root.setAttribute('data-theme', prefs.theme);
    root.classList.toggle('density-compact', Boolean(prefs.compact));
    themeColor(prefs.theme);
  }

  /** Remember and apply `prefs` (either field may be left out). */
  function save(prefs) {
    var next = get();
    if (THEMES.indexOf(prefs.theme) >= 0) next.theme = prefs.theme;
    if (typeof prefs.compact === 'boolean') next.compact = prefs.compact;
    write(KEY_THEME, next.theme);
    write(KEY_DENSITY, next.compact ? 'compact' : 'comfortable');
    apply(next);
    return next;
  }

  apply(get());
  window.addEventListener('storage', function (e) {
    if (e.key === KEY_THEME || e.key === KEY_DENSITY || e.key === null) apply(get());
  });
  window.HearthAppearance = { get: get, save: save };
}());
