// The scale bar drawn over the slice when its file gives a pixel spacing (DICOM PixelSpacing):
// a round length in millimetres, about a sixth of the view wide, that follows the zoom.

const NICE_MM = [1, 2, 5, 10, 20, 50, 100, 200];

/// The bar for `spacing` = [row, column] mm and `scale` screen pixels per image pixel:
/// `{ mm, px }`, the largest round length whose bar is at most `target` screen pixels, or null
/// without a spacing.
export function scaleBar(spacing, scale, target = 110) {
  const colMm = spacing?.[1];
  if (!(colMm > 0) || !(scale > 0)) return null;
  const pxPerMm = scale / colMm;
  const mm = NICE_MM.filter((m) => m * pxPerMm <= target).pop() ?? NICE_MM[0];
  return { mm, px: mm * pxPerMm };
}

/// Draw the bar in the bottom-left corner of the canvas; returns what was drawn (or null).
export function drawScaleBar(ctx, spacing, scale) {
  const bar = scaleBar(spacing, scale);
  if (!bar) return null;
  const x = 16;
  const y = ctx.canvas.height - 18;
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.lineWidth = 2;
  ctx.strokeStyle = '#fff';
  ctx.shadowColor = '#000';
  ctx.shadowBlur = 3;
  ctx.beginPath();
  ctx.moveTo(x, y - 5);
  ctx.lineTo(x, y);
  ctx.lineTo(x + bar.px, y);
  ctx.lineTo(x + bar.px, y - 5);
  ctx.stroke();
  ctx.fillStyle = '#fff';
  ctx.font = '12px system-ui';
  ctx.fillText(`${bar.mm} mm`, x + bar.px + 6, y + 4);
  ctx.restore();
  return bar;
}
