/**
 * How the edge tells an app worker who the client is. An app behind `portico up` is reached over
 * a private unix socket (only the supervisor's processes can connect), so the socket's peer
 * address says nothing. The edge adds this field with the client's address to every request it
 * proxies to an app, and drops it from what any client sends (to any upstream): the value a
 * worker reads on its private socket can only come from the edge. A worker serving a public
 * address (`portico app --bind`) ignores it.
 */
export const CLIENT_ADDRESS_FIELD = 'portico-client-address';
