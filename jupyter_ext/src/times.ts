/** Times as people read them: always with their time zone, so that no one guesses which. */

/**
 * `iso` in `timeZone` (the browser's own when omitted), short, naming the zone:
 * `2 Dec 2026, 07:00 CET`. An unknown zone falls back to UTC, saying so.
 */
export function formatTime(iso: string, timeZone?: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return iso;
  }
  const options: Intl.DateTimeFormatOptions = {
    day: 'numeric',
    month: 'short',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZoneName: 'short'
  };
  try {
    return new Intl.DateTimeFormat('en-GB', { ...options, timeZone }).format(
      date
    );
  } catch {
    return new Intl.DateTimeFormat('en-GB', {
      ...options,
      timeZone: 'UTC'
    }).format(date);
  }
}
