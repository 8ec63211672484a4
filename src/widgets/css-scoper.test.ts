import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { scopeCss } from './css-scoper.js';
import { AppError, ErrorCode } from '../errors/index.js';
import {
  finishRender,
  MAX_WIDGET_CSS_BYTES,
  MAX_WIDGET_HTML_BYTES,
  neutraliseScript,
  scopeWidgetCss,
  widgetCsp,
  widgetDocument,
  wrapHtml,
} from './widget-output.js';

const ROOT = '[data-tp-widget="w1"]';
const scope = (css: string) => scopeCss(css, ROOT, 'w1');

describe('scopeCss', () => {
  it('prefixes every selector of a list with the widget root', () => {
    assert.equal(
      scope('.a{color:red} p, .b > i {margin:0}'),
      `${ROOT} .a{color:red}\n${ROOT} p,${ROOT} .b > i{margin:0}`,
    );
    assert.equal(scope('*{box-sizing:border-box}'), `${ROOT} *{box-sizing:border-box}`);
  });

  it('maps :root, html and body to the root element itself', () => {
    assert.equal(
      scope(':root{--x:1} html body .c{color:blue} body>p{x:y} body.dark .x{a:b} HTML{a:b}'),
      [
        `${ROOT}{--x:1}`,
        `${ROOT} .c{color:blue}`,
        `${ROOT} > p{x:y}`,
        `${ROOT}.dark .x{a:b}`,
        `${ROOT}{a:b}`,
      ].join('\n'),
    );
  });

  it('scopes inside @media and @supports, and unwraps @layer blocks', () => {
    assert.equal(
      scope(
        '@media (max-width: 600px){.a{color:red} @supports (display:grid){body{display:grid}}} @layer x{.b{c:d}}',
      ),
      `@media (max-width: 600px){${ROOT} .a{color:red}@supports (display:grid){${ROOT}{display:grid}}}\n${ROOT} .b{c:d}`,
    );
  });

  it('drops page-global at-rules', () => {
    const css =
      '@import url(https://evil.example/x.css); @charset "utf-8"; @font-face{font-family:Arial;src:url(https://x.example/f)} ' +
      '@layer a, b; @property --x{syntax:"*"} @scope (body) { :scope { display:none } } @namespace svg url(x); .z{q:r}';
    assert.equal(scope(css), `${ROOT} .z{q:r}`);
  });

  it('renames keyframes and the animations that use them', () => {
    assert.equal(
      scope(
        '@keyframes spin{from{transform:rotate(0)}to{transform:rotate(360deg)}} .a{animation:spin 1s} .b{animation-name:other}',
      ),
      `@keyframes spin-w1{from{transform:rotate(0)}to{transform:rotate(360deg)}}\n${ROOT} .a{animation:spin-w1 1s}\n${ROOT} .b{animation-name:other}`,
    );
  });

  it('flattens nested rules and scopes them again, so & cannot reach outside the root', () => {
    assert.equal(
      scope('.a{color:red; &:hover{color:blue} body:has(&){background:red} @media (x){color:green}}'),
      [
        `${ROOT} .a{color:red}`,
        `${ROOT} :is(${ROOT} .a):hover{color:blue}`,
        `${ROOT}:has(:is(${ROOT} .a)){background:red}`,
        `@media (x){${ROOT} .a{color:green}}`,
      ].join('\n'),
    );
  });

  it('keeps only https and data:image URLs, and drops script-capable values', () => {
    const css =
      '.a{background:url(javascript:alert(1))} .b{background:url("https://ok.example/x.png")} .c{background:url(/relative.png)} ' +
      '.d{background:url( data:image/png;base64,AAA )} .e{width:expression(alert(1))} .f{behavior:url(x.htc)} ' +
      '.g{-moz-binding:url(x)} .h{background:image-set("a.png" 1x)} .i{background:u\\72l(javascript:alert(1))} ' +
      '.j{background:-moz-element(#other)}';
    assert.equal(
      scope(css),
      `${ROOT} .b{background:url("https://ok.example/x.png")}\n${ROOT} .d{background:url( data:image/png;base64,AAA )}`,
    );
  });

  it('cannot be broken out of: no `<` survives and malformed input is dropped, not reinterpreted', () => {
    const hostile = [
      '.a{content:"</style><script>alert(1)</script>"}',
      '.a { x: y } </style><script>alert(1)</script> .b{c:d}',
      '.a{color:red}} body{display:none}',
      '.a{content:"unterminated} body{display:none}',
      '.a:is(}) {color:red} .b{c:d}',
      '.a{b:c}/* </style><script> */.d{e:f}',
      '<!-- .a{b:c} --> <\\/style>',
      '.a{--x:{a:b}; color:red}',
      '.a{color:red',
    ];
    for (const css of hostile) {
      const out = scope(css);
      assert.ok(!out.includes('<'), `${css} => ${out}`);
      assert.ok(!/(^|[},])\s*(body|html|\.b|\.d)\s*\{/.test(out), `${css} => ${out}`);
      for (const line of out.split('\n').filter(Boolean))
        assert.ok(line.startsWith(ROOT) || line.startsWith('@'), line);
    }
    assert.equal(scope(hostile[0]), `${ROOT} .a{content:"\\3c /style>\\3c script>alert(1)\\3c /script>"}`);
    assert.equal(scope(hostile[2]), `${ROOT} .a{color:red}`);
    assert.equal(scope(hostile[3]), '');
    assert.equal(scope(hostile[8]), `${ROOT} .a{color:red}`);
  });

  it('bounds the output of deeply nested input', () => {
    let css = '';
    for (let i = 0; i < 40; i += 1) css += `.a${i}, .b${i} {`;
    css += 'color:red' + '}'.repeat(40);
    assert.ok(scope(css).length <= 4 * css.length + 4096);
    assert.doesNotThrow(() => scope('('.repeat(100_000)));
  });
});

describe('widget output', () => {
  it('wraps markup in its root and drops page-level tags with their contents', () => {
    assert.equal(
      wrapHtml(
        '<p title="<style>">x</p><STYLE>b{}</STYLE><script>1</script><link rel=x><base href=/><meta http-equiv=refresh><styles>',
        'w1',
      ),
      '<div data-tp-widget="w1"><p title="&lt;style&gt;">x</p></div>',
    );
  });

  it('keeps addon markup inside its root: no handlers, script URLs, frames or stray closing tags', () => {
    const cases: [string, string][] = [
      ['<p>a</div></div><b>x', '<p>a<b>x</b></p>'],
      ['<img src=x onerror=alert(1)>', '<img src="x" />'],
      ['<iframe srcdoc="<script>alert(1)</script>">t</iframe>', 't'],
      [
        '<a href="javascript:alert(1)">j</a><a href="jav&#x09;ascript:x">k</a>',
        '<a rel="noopener noreferrer">j</a><a rel="noopener noreferrer">k</a>',
      ],
      ['<svg onload=alert(1)><a xlink:href="javascript:1">s</a></svg>', '<a>s</a>'],
      [
        '<form action="https://evil.example"><button formaction="https://evil.example">b</button></form>',
        '<form><button>b</button></form>',
      ],
      ['<div data-tp-widget="other" id="config" data-x="1">d</div>', '<div data-x="1">d</div>'],
      [
        '<label for="tp-email">E</label><input id="tp-email" name="email" type="email">',
        '<label for="tp-email">E</label><input id="tp-email" name="email" type="email" />',
      ],
      [
        '<a href="https://x.example" target="_blank">l</a>',
        '<a href="https://x.example" target="_blank" rel="noopener noreferrer">l</a>',
      ],
    ];
    for (const [markup, expected] of cases) {
      assert.equal(wrapHtml(markup, 'w1'), `<div data-tp-widget="w1">${expected}</div>`, markup);
    }
  });

  it('refuses a render whose markup or stylesheet is over its cap, naming the field', async () => {
    const ids = { rootId: 'w1', cacheKey: 'k', version: '1.0.0' };
    await assert.rejects(
      () => finishRender({ html: 'x'.repeat(MAX_WIDGET_HTML_BYTES + 1) }, ids),
      (error: AppError) => error.code === ErrorCode.OutputTooLarge && error.details?.field === 'html',
    );
    await assert.rejects(
      () => finishRender({ css: 'é'.repeat(MAX_WIDGET_CSS_BYTES / 2 + 1) }, ids),
      (error: AppError) => error.code === ErrorCode.OutputTooLarge && error.details?.field === 'css',
    );
    assert.equal(
      (await finishRender({ html: '<p>x</p>', css: 'p{a:b}' }, ids)).css,
      '[data-tp-widget="w1"] p{a:b}',
    );
  });

  it('scopes a stylesheet once and gives every root id the output scoping for that id would', () => {
    const sheets = [
      '.checkout { display: grid; gap: 8px } body { margin: 0 } @media (max-width: 600px) { .checkout { gap: 4px } }',
      '@keyframes spin{from{transform:rotate(0)}to{transform:rotate(360deg)}} .a{animation:spin 1s} :root{--x:1}',
      '.a{color:red; &:hover{color:blue} body:has(&){background:red}} .b::after{content:"w0123456789abcdef"}',
      '</style><script>x</script>',
    ];
    const ids = ['w0123456789abcdef', 'wfedcba9876543210', 'w1'];
    for (const css of sheets) {
      for (const id of [...ids, ...ids]) {
        assert.equal(scopeWidgetCss(css, id), scopeCss(css, `[data-tp-widget="${id}"]`, id), `${id}: ${css}`);
      }
    }
  });

  it('scopes directly for a root id that is not a plain identifier', () => {
    const id = 'w"] *, x[y="';
    assert.equal(scopeWidgetCss('.a{b:c}', id), scopeCss('.a{b:c}', `[data-tp-widget="${id}"]`, id));
  });

  it('keeps </script> and <!-- from ending the script element', () => {
    assert.equal(neutraliseScript('a("</SCRIPT>"); b("<!--")'), 'a("\\x3C/SCRIPT>"); b("\\x3C!--")');
  });

  it('builds a document whose style and script carry the nonce the CSP names', () => {
    const doc = widgetDocument(
      {
        html: '<div data-tp-widget="w1">x</div>',
        css: 'p{}',
        javascript: 'go()',
        cacheKey: 'k',
        version: '1.0.0',
      },
      'a/<b>',
      'N0nce',
    );
    assert.match(doc, /<title>a\/&lt;b&gt;<\/title><style nonce="N0nce">p\{\}<\/style>/);
    assert.match(
      doc,
      /<body><div data-tp-widget="w1">x<\/div><script nonce="N0nce">go\(\)<\/script><\/body>/,
    );
    const csp = widgetCsp('N0nce');
    assert.match(csp, /default-src 'none'; script-src 'nonce-N0nce'; style-src 'nonce-N0nce'/);
    assert.match(csp, /base-uri 'none'/);
  });
});
