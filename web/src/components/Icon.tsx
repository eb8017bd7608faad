/** A file, folder or shared-folder glyph as inline SVG: no icon font, no emoji font needed. */
const PATHS = {
	folder: "M2 5.5A1.5 1.5 0 0 1 3.5 4h4l2 2h7A1.5 1.5 0 0 1 18 7.5v8a1.5 1.5 0 0 1-1.5 1.5h-13A1.5 1.5 0 0 1 2 15.5z",
	file: "M5 2.5A1.5 1.5 0 0 1 6.5 1H12l4 4v12.5a1.5 1.5 0 0 1-1.5 1.5h-8A1.5 1.5 0 0 1 5 17.5zM12 1v4h4",
	shared:
		"M2 5.5A1.5 1.5 0 0 1 3.5 4h4l2 2h7A1.5 1.5 0 0 1 18 7.5v8a1.5 1.5 0 0 1-1.5 1.5h-13A1.5 1.5 0 0 1 2 15.5zM8 11.5a1.5 1.5 0 1 0 0-.01M12 11.5a1.5 1.5 0 1 0 0-.01M6.5 15c.5-1 1-1.5 1.5-1.5s1 .5 1.5 1.5M10.5 15c.5-1 1-1.5 1.5-1.5s1 .5 1.5 1.5",
} as const;

export function Icon({ kind }: { kind: keyof typeof PATHS }) {
	return (
		<svg class={`icon-glyph ${kind}`} viewBox="0 0 20 20" width="20" height="20" aria-hidden="true" focusable="false">
			<path d={PATHS[kind]} />
		</svg>
	);
}
