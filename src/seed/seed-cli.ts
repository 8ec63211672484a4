import { main } from '../cli/main.js';

/** `npm run seed [-- options]`: the same as `themepress seed [options]`. */
await main(['seed', ...process.argv.slice(2)]);
