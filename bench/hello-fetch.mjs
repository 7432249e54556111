// The hello-world Fetch app of the gateway benchmark: the same 13 bytes as the peers' node-hello.js.
const body = 'Hello, World!';
export default {
  fetch() {
    return new Response(body, { headers: { 'content-type': 'text/plain' } });
  },
};
