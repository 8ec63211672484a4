import { createHtmlKit } from '../in-isolate/html-template.js';
import { sandboxBootstrap } from '../in-isolate/bootstrap.js';

/**
 * Source of the per-context bootstrap: both in-isolate functions are injected as text, so the isolate
 * gets no host object, only code. The script's completion value is the driver (`start`, `take`, `resume`).
 */
export const BOOTSTRAP_SOURCE = `(${sandboxBootstrap.toString()})(${createHtmlKit.toString()})`;
