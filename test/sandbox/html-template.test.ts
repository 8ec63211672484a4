import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createHtmlKit } from '../../src/sandbox/index.js';

// The kit runs inside isolates as source text; it is plain enough to test directly on the host too.
const { html, raw, isSafeHtml, escapeHtml } = createHtmlKit();

describe('html template', () => {
  it('escapes text and attribute values', () => {
    const evil = `<script>alert("x")</script>'&`;
    assert.equal(
      String(html`<p title="${evil}">${evil}</p>`),
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;</p>',
    );
    assert.equal(String(html`<p title='${"'"}'>`), `<p title='&#39;'>`);
  });

  it('quotes unquoted attribute values', () => {
    assert.equal(String(html`<input value=${'a b onfocus=x'}>`), '<input value="a b onfocus&#61;x">');
  });

  it('blocks dangerous URL schemes only where the value starts the URL', () => {
    assert.equal(String(html`<a href="${'javascript:alert(1)'}">`), '<a href="about:blank#blocked">');
    assert.equal(String(html`<img src=${'vbscript:x'}>`), '<img src="about:blank#blocked">');
    assert.equal(String(html`<a href="${'https://x.test/a?b=1'}">`), '<a href="https://x.test/a?b&#61;1">');
    assert.equal(String(html`<a href="${'/relative/path'}">`), '<a href="/relative/path">');
    assert.equal(String(html`<a href="/search?q=${'javascript:1'}">`), '<a href="/search?q&#61;javascript:1">');
  });

  it('refuses event handlers, script bodies, and tag or attribute names', () => {
    assert.throws(() => html`<a onclick="${'x'}">`, /event handler/);
    assert.throws(() => html`<a ONMOUSEOVER=${'x'}>`, /event handler/);
    assert.throws(() => html`<script>var a = ${'1'};</script>`, /<script>/);
    assert.throws(() => html`<style>${'x'}</style>`, /<style>/);
    assert.throws(() => html`<${'img'} src=x>`, /text or attribute values/);
    assert.throws(() => html`<a ${'onclick'}="x">`, /text or attribute values/);
  });

  it('allows trusted markup and empty values where values are refused', () => {
    assert.equal(String(html`<script>${raw('var a = 1;')}</script>`), '<script>var a = 1;</script>');
    assert.equal(String(html`<input ${raw('checked')} ${null} ${false}>`), '<input checked  >');
  });

  it('escapes inside textarea and title, and resumes text after </script>', () => {
    assert.equal(String(html`<textarea>${'</textarea><b>'}</textarea>`), '<textarea>&lt;/textarea&gt;&lt;b&gt;</textarea>');
    assert.equal(String(html`<script>${raw('1')}</script><p>${'<i>'}</p>`), '<script>1</script><p>&lt;i&gt;</p>');
  });

  it('is not fooled by > inside quoted attributes of the static markup', () => {
    assert.equal(String(html`<a title="x>y" class=${'a b'}>`), '<a title="x>y" class="a b">');
  });

  it('renders arrays, nested templates, numbers and empty values', () => {
    const items = ['<a>', 'b'];
    assert.equal(
      String(html`<ul>${items.map((i) => html`<li>${i}</li>`)}</ul>${0}${null}${undefined}${false}`),
      '<ul><li>&lt;a&gt;</li><li>b</li></ul>0',
    );
  });

  it('only trusts SafeHtml made by its own kit', () => {
    const other = createHtmlKit();
    assert.equal(isSafeHtml(html`x`), true);
    assert.equal(isSafeHtml({ __html: '<b>' }), false);
    assert.equal(String(html`${{ __html: '<b>' }}`), '[object Object]');
    assert.equal(String(html`${other.raw('<b>')}`), '[object Object]'.replace(/.*/, '&lt;b&gt;'));
    assert.equal(JSON.stringify({ h: html`<b>${'&'}</b>` }), '{"h":"<b>&amp;</b>"}');
    assert.equal(escapeHtml('`='), '&#96;&#61;');
  });
});
