/**
 * HTTP-date (RFC 9110 §5.6.7), the one parser for Date, Expires, Last-Modified, If-Modified-Since
 * and If-Unmodified-Since. Hand-written because `Date.parse` accepts far more than the three forms
 * the RFC allows ("… 1994 08:49:37 UTC", a missing comma, a one-digit hour, dashes, extra spaces)
 * and reads RFC 850's two-digit years as 19xx: a response carrying such an Expires was served as
 * fresh for decades. HTTP-date is case-sensitive (§5.6.7), so the names are matched exactly.
 */

const DAY_NAMES = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const LONG_DAY_NAMES = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

// IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
const IMF_FIXDATE = /^([A-Z][a-z]{2}), (\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT$/;
// rfc850-date (obsolete): Sunday, 06-Nov-94 08:49:37 GMT
const RFC850_DATE = /^([A-Z][a-z]{5,8}), (\d\d)-([A-Z][a-z]{2})-(\d\d) (\d\d):(\d\d):(\d\d) GMT$/;
// asctime-date (obsolete): Sun Nov  6 08:49:37 1994 (a one-digit day is preceded by a space)
const ASCTIME_DATE = /^([A-Z][a-z]{2}) ([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\d{4})$/;

const FIFTY_YEARS_MS = 50 * 365.2425 * 86_400_000;

/**
 * The time an HTTP-date names, in ms since the epoch, or NaN when the value is not one of the
 * three forms or names no real instant (31 Feb, hour 24). `nowMs` decides the century of an
 * RFC 850 two-digit year.
 */
export function parseHttpDate(value: string | undefined, nowMs: number = Date.now()): number {
  if (value === undefined || value.length < 24 || value.length > 37) return NaN;
  let match = IMF_FIXDATE.exec(value);
  if (match !== null) {
    if (!DAY_NAMES.includes(match[1] as string)) return NaN;
    return instant(Number(match[4]), match[3] as string, match[2] as string, match[5] as string, match[6] as string, match[7] as string);
  }
  match = RFC850_DATE.exec(value);
  if (match !== null) {
    if (!LONG_DAY_NAMES.includes(match[1] as string)) return NaN;
    // §5.6.7: a two-digit year that appears to be more than 50 years in the future means the most
    // recent past year with the same last two digits.
    const century = Math.floor(new Date(nowMs).getUTCFullYear() / 100) * 100;
    const at = instant(century + Number(match[4]), match[3] as string, match[2] as string, match[5] as string, match[6] as string, match[7] as string);
    if (at - nowMs > FIFTY_YEARS_MS) return instant(century - 100 + Number(match[4]), match[3] as string, match[2] as string, match[5] as string, match[6] as string, match[7] as string);
    return at;
  }
  match = ASCTIME_DATE.exec(value);
  if (match !== null) {
    if (!DAY_NAMES.includes(match[1] as string)) return NaN;
    return instant(Number(match[7]), match[2] as string, match[3] as string, match[4] as string, match[5] as string, match[6] as string);
  }
  return NaN;
}

function instant(year: number, monthName: string, day: string, hour: string, minute: string, second: string): number {
  const month = MONTHS.indexOf(monthName);
  const d = Number(day);
  const h = Number(hour);
  const m = Number(minute);
  // A leap second (60) is allowed by the grammar's source (RFC 5322 §3.3) and taken as :59.
  const s = Math.min(Number(second), 59);
  if (month < 0 || !(d >= 1 && d <= daysIn(year, month)) || h > 23 || m > 59 || Number(second) > 60) return NaN;
  // setUTCFullYear, not Date.UTC, which reads years 0-99 as 1900-1999.
  return new Date(0).setUTCFullYear(year, month, d) + ((h * 60 + m) * 60 + s) * 1000;
}

function daysIn(year: number, month: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month + 1, 0);
  return date.getUTCDate();
}
