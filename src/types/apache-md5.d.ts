// apache-md5 ships no types: its one export, as its README documents it.
declare module 'apache-md5' {
  /** Apache MD5 (`$apr1$`) or MD5-crypt (`$1$`) of `password`; `salt` is a whole stored hash or `$apr1$SALT$` (random salt when omitted). */
  function apacheMd5(password: string, salt?: string): string;
  export default apacheMd5;
}
