/** Sizes and times as people read them. */

const UNITS = ["bytes", "KB", "MB", "GB", "TB"];

/** 1,234,567 → "1.2 MB" (powers of 1000, like the operating systems' file managers). */
export function formatBytes(bytes: number | null): string {
	if (bytes === null) return "—";
	if (bytes < 1000) return bytes === 1 ? "1 byte" : `${bytes} bytes`;
	let value = bytes;
	let unit = 0;
	while (value >= 1000 && unit < UNITS.length - 1) {
		value /= 1000;
		unit++;
	}
	return `${value >= 100 ? Math.round(value) : value.toFixed(1)} ${UNITS[unit]}`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function formatTime(iso: string): string {
	return dateTime.format(new Date(iso));
}
