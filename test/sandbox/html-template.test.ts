import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createHtmlKit } from '../../src/sandbox/index.js';

// The kit runs inside isolates as source text; it is plain enough to test directly on the host too.
// Named `h` here because Prettier reformats the markup inside templates tagged `html`.
const { html: h, raw, isSafeHtml, escapeHtml } = createHtmlKit();

describe('html template', () => {
  it('escapes text and attribute values', () => {
    const evil = `<script>alert("x")</script>'&`;
    assert.equal(
      String(h`<p title="${evil}">${evil}</p>`),
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;</p>',
    );
    assert.equal(String(h`<p title='${"'"}'>`), `<p title='&#39;'>`);
  });

  it('quotes unquoted attribute values', () => {
    assert.equal(String(h`<input value=${'a b onfocus=x'}>`), '<input value="a b onfocus&#61;x">');
  });

  it('blocks dangerous URL schemes only where the value starts the URL', () => {
    assert.equal(String(h`<a href="${'javascript:alert(1)'}">`), '<a href="about:blank#blocked">');
    assert.equal(String(h`<img src=${'vbscript:x'}>`), '<img src="about:blank#blocked">');
    assert.equal(String(h`<a href="${'https://x.test/a?b=1'}">`), '<a href="https://x.test/a?b&#61;1">');
    assert.equal(String(h`<a href="${'/relative/path'}">`), '<a href="/relative/path">');
    assert.equal(String(h`<a href="/search?q=${'javascript:1'}">`), '<a href="/search?q=javascript:1">');
  });

  it('refuses event handlers, script bodies, and tag or attribute names', () => {
    assert.throws(() => h`<a onclick="${'x'}">`, /event handler/);
    assert.throws(() => h`<a ONMOUSEOVER=${'x'}>`, /event handler/);
    assert.throws(() => h`<script>var a = ${'1'};</script>`, /<script>/);
    assert.throws(() => h`<style>${'x'}</style>`, /<style>/);
    assert.throws(() => h`<${'img'} src=x>`, /text or attribute values/);
    assert.throws(() => h`<p>x</p><${'script'}>`, /text or attribute values/);
    assert.throws(() => h`<a ${'onclick'}="x">`, /text or attribute values/);
  });

  it('allows trusted markup and empty values where values are refused', () => {
    assert.equal(String(h`<script>${raw('var a = 1;')}</script>`), '<script>var a = 1;</script>');
    assert.equal(String(h`<input ${raw('checked')} ${null} ${false}>`), '<input checked  >');
  });

  it('escapes inside textarea and title, and resumes text after </script>', () => {
    assert.equal(
      String(h`<textarea>${'</textarea><b>'}</textarea>`),
      '<textarea>&lt;/textarea&gt;&lt;b&gt;</textarea>',
    );
    assert.equal(
      String(h`<script>${raw('1')}</script><p>${'<i>'}</p>`),
      '<script>1</script><p>&lt;i&gt;</p>',
    );
  });

  it('is not fooled by > inside quoted attributes of the static markup', () => {
    assert.equal(String(h`<a title="x>y" class=${'a b'}>`), '<a title="x>y" class="a b">');
  });

  it('renders arrays, nested templates, numbers and empty values', () => {
    const items = ['<a>', 'b'];
    assert.equal(
      String(h`<ul>${items.map((i) => h`<li>${i}</li>`)}</ul>${0}${null}${undefined}${false}`),
      '<ul><li>&lt;a&gt;</li><li>b</li></ul>0',
    );
  });

  it('only trusts SafeHtml made by its own kit', () => {
    const other = createHtmlKit();
    assert.equal(isSafeHtml(h`x`), true);
    assert.equal(isSafeHtml({ __html: '<b>' }), false);
    assert.equal(String(h`${{ __html: '<b>' }}`), '[object Object]');
    assert.equal(String(h`${other.raw('<b>')}`), '[object Object]'.replace(/.*/, '&lt;b&gt;'));
    assert.equal(JSON.stringify({ h: h`<b>${'&'}</b>` }), '{"h":"<b>&amp;</b>"}');
    assert.equal(escapeHtml('`='), '&#96;&#61;');
  });
});
