import { LabIcon } from '@jupyterlab/ui-components';

/** A moon (Himalia is one of Jupiter's) in the lab's icon colour, so it follows the theme. */
export const himaliaIcon = new LabIcon({
  name: 'himalia:moon',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 2a10 10 0 1 0 10 10A10 10 0 0 0 12 2zm0 18a8 8 0 0 1-1.6-15.84A7 7 0 0 0 19.84 13.6 8 8 0 0 1 12 20z"/>
    <circle cx="15.5" cy="8" r="1.5"/>
  </g>
</svg>`
});
