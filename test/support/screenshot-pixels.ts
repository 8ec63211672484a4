import type { Page } from 'playwright-core';

/**
 * How many pixels of a PNG screenshot are coloured (not white, grey or black): decoded by the
 * browser itself, so no image library is needed. Chart lines are coloured; axes, grids and text
 * are grey, so a plot with nothing drawn counts (almost) none.
 */
export async function colouredPixels(page: Page, png: Buffer): Promise<number> {
  return (await page.evaluate(`new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => {
      const canvas = document.createElement('canvas');
      canvas.width = image.width;
      canvas.height = image.height;
      const context = canvas.getContext('2d');
      context.drawImage(image, 0, 0);
      const { data } = context.getImageData(0, 0, image.width, image.height);
      let count = 0;
      for (let i = 0; i < data.length; i += 4) {
        const max = Math.max(data[i], data[i + 1], data[i + 2]);
        const min = Math.min(data[i], data[i + 1], data[i + 2]);
        if (max - min > 60) count += 1;
      }
      resolve(count);
    };
    image.onerror = () => reject(new Error('the screenshot did not decode'));
    image.src = 'data:image/png;base64,${png.toString('base64')}';
  })`)) as number;
}
