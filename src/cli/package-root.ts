import { fileURLToPath } from 'node:url';

/**
 * The folder of the themepress package (where package.json, bin/ and addons-examples/ are). This
 * module compiles to dist/src/cli/, three levels below it.
 */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
