"""Portico's WSGI worker: one process of an app's pool, started and supervised by Portico's arbiter.

Standard library only, Python >= 3.9. The arbiter starts it with the worker's settings (JSON) as
its one argument and a Node IPC channel on the file descriptor NODE_CHANNEL_FD (newline-delimited
JSON, the channel node:child_process opens for any child). Over it the worker sends its heartbeat
(requests served, memory, and since when its oldest request in progress runs, so a request past
`timeout` gets the worker killed, as gunicorn's sync workers are), says when it is ready, when it
wants recycling (max requests) and what it logs; it hears `stop` and the acks of the arbiter.

Requests come from Portico's edge over the worker's own unix socket in the uwsgi binary protocol
(https://uwsgi-docs.readthedocs.io/en/latest/Protocol.html), the one the edge speaks to uWSGI:

    request  = modifier1 (0) u8, datasize u16 LE, modifier2 (0) u8, vars, then CONTENT_LENGTH body bytes
    vars     = *(keysize u16 LE, key, valsize u16 LE, value)

The answer is an HTTP/1.1 response framed by Content-Length or chunked (RFC 9112 section 6), so
the edge can send the next request on the same connection (keep-alive: the edge never pipelines,
it waits for the end of one response before the next request). The app is called per PEP 3333.
"""

import importlib
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

READ_SIZE = 64 * 1024
#: The longest request head taken (the edge refuses heads over 64 KiB before they get here).
MAX_VARS = 65535
TICK_SECONDS = 1.0

HOP_BY_HOP = frozenset(
    ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailers', 'transfer-encoding', 'upgrade']
)


class IPC:
    """The Node IPC channel: one JSON object per line, both ways. Writes come from several threads."""

    def __init__(self, fd):
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(True)
        self.lock = threading.Lock()
        self.buffer = b''

    def send(self, message):
        data = (json.dumps(message, separators=(',', ':')) + '\n').encode('utf-8')
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                # The arbiter is gone. The main loop would see the channel's end, unless a request
                # holds it (a hung app): the heartbeat thread's next send ends the process then.
                os._exit(0)

    def receive(self):
        """The messages that have arrived (call when readable); None when the channel closed."""
        try:
            data = self.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            return None
        if not data:
            return None
        self.buffer += data
        messages = []
        while b'\n' in self.buffer:
            line, self.buffer = self.buffer.split(b'\n', 1)
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and str(message.get('type', '')).startswith('portico:'):
                messages.append(message)
        return messages


class ErrorStream:
    """`wsgi.errors`, and where tracebacks go: lines to Portico's error log, over IPC."""

    def __init__(self, ipc, level='error'):
        self.ipc = ipc
        self.level = level
        self.pending = ''
        self.lock = threading.Lock()

    def write(self, text):
        if isinstance(text, bytes):
            text = text.decode('utf-8', 'replace')
        with self.lock:
            self.pending += text
            if '\n' not in self.pending:
                return len(text)
            lines, self.pending = self.pending.rsplit('\n', 1)
        self.ipc.send({'type': 'portico:log', 'level': self.level, 'message': lines})
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    # What code that writes to sys.stderr may ask of it.
    encoding = 'utf-8'
    errors = 'replace'

    def isatty(self):
        return False

    def writable(self):
        return True

    def fileno(self):
        return 2

    def flush(self):
        with self.lock:
            text, self.pending = self.pending, ''
        if text:
            self.ipc.send({'type': 'portico:log', 'level': self.level, 'message': text})


class Connection:
    """One connection from the edge: a socket and the bytes read past the last request."""

    __slots__ = ('sock', 'buffer', 'busy', 'served')

    def __init__(self, sock):
        self.sock = sock
        self.buffer = bytearray()
        self.busy = False
        self.served = 0

    def fill(self):
        """Reads more into the buffer; False at the end of the connection."""
        data = self.sock.recv(READ_SIZE)
        if not data:
            return False
        self.buffer += data
        return True

    def read_exact(self, size):
        """The next `size` bytes, as a bytearray (one copy; callers only index and decode it)."""
        while len(self.buffer) < size:
            if not self.fill():
                raise EOFError('connection closed mid-request')
        data = self.buffer[:size]
        del self.buffer[:size]
        return data


class Input:
    """`wsgi.input`: the request body, streamed from the connection, bounded by CONTENT_LENGTH."""

    def __init__(self, connection, length):
        self.connection = connection
        self.remaining = length

    def _take(self, size):
        connection = self.connection
        if self.remaining <= 0:
            return b''
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        if not connection.buffer and not connection.fill():
            raise EOFError('connection closed mid-body')
        data = bytes(connection.buffer[:size])
        del connection.buffer[: len(data)]
        self.remaining -= len(data)
        return data

    def read(self, size=-1):
        """Up to `size` bytes, fewer only at the body's end (a file's read; Django reads the whole body in one call)."""
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        first = self._take(size)
        if len(first) == size:
            return first
        parts = [first]
        got = len(first)
        while got < size:
            part = self._take(size - got)
            parts.append(part)
            got += len(part)
        return b''.join(parts)

    def readline(self, size=-1):
        connection = self.connection
        line = bytearray()
        while self.remaining > 0 and (size is None or size < 0 or len(line) < size):
            if not connection.buffer and not connection.fill():
                raise EOFError('connection closed mid-body')
            limit = min(len(connection.buffer), self.remaining)
            if size is not None and size >= 0:
                limit = min(limit, size - len(line))
            newline = connection.buffer.find(b'\n', 0, limit)
            end = limit if newline == -1 else newline + 1
            line += connection.buffer[:end]
            del connection.buffer[:end]
            self.remaining -= end
            if newline != -1:
                break
        return bytes(line)

    def readlines(self, hint=-1):
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def drain(self):
        """Reads what the app left of the body, so the connection is at the next request."""
        while self.remaining > 0:
            self._take(self.remaining)


class FileWrapper:
    """`wsgi.file_wrapper` (PEP 3333 "Optional Platform-Specific File Handling"): sent with os.sendfile when the file has a descriptor."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, 'close'):
            self.close = filelike.close

    def fileno(self):
        try:
            return self.filelike.fileno()
        except (AttributeError, OSError, ValueError):
            return None

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


class Response:
    """start_response, write() and the framing of one response (RFC 9112 section 6)."""

    def __init__(self, connection, method, worker):
        self.connection = connection
        self.bodyless = method == 'HEAD'
        #: Read for `draining` when the head goes out (no closure per request).
        self.worker = worker
        self.status = None
        self.headers = None
        self.length = None
        self.chunked = False
        self.sent_head = False
        self.sent = 0
        #: The connection cannot carry another request (a body shorter than its Content-Length, an error mid-body).
        self.broken = False

    def start_response(self, status, headers, exc_info=None):
        if exc_info:
            try:
                if self.sent_head:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError('start_response called a second time without exc_info')
        if not isinstance(status, str) or len(status) < 3 or not status[:3].isdigit():
            raise ValueError('status must be a string such as "200 OK", got %r' % (status,))
        self.status = status
        self.headers = headers
        return self.write

    def _head(self, body_length):
        """The head; `body_length` is the whole body's length when known before the first byte."""
        if self.status is None:
            raise AssertionError('the app wrote a body before calling start_response')
        code = int(self.status[:3])
        lines = ['HTTP/1.1 ', self.status, '\r\n']
        for name, value in self.headers:
            lower = name.lower()
            if lower in HOP_BY_HOP:
                continue  # PEP 3333: hop-by-hop fields are the server's business
            if lower == 'content-length':
                self.length = int(value)
            lines.extend((name, ': ', value, '\r\n'))
        if code < 200 or code in (204, 304):
            self.bodyless = True
            self.length = 0
        elif self.length is None and not self.bodyless:
            if body_length is not None:
                self.length = body_length
                lines.extend(('Content-Length: ', str(body_length), '\r\n'))
            else:
                self.chunked = True
                lines.append('Transfer-Encoding: chunked\r\n')
        if self.worker.draining:
            lines.append('Connection: close\r\n')
            self.broken = True
        lines.append('\r\n')
        self.sent_head = True
        return ''.join(lines).encode('latin-1')

    def _frame(self, data):
        if self.bodyless or not data:
            return b''
        if self.chunked:
            return b'%x\r\n%s\r\n' % (len(data), data)
        room = self.length - self.sent
        if len(data) > room:
            data = data[:room]  # more than its Content-Length said: the rest is not sent
        self.sent += len(data)
        return data

    def write(self, data):
        """The `write` callable, and each item of the response iterable."""
        if not isinstance(data, bytes):
            raise TypeError('a WSGI response body item must be bytes, got %s' % type(data).__name__)
        out = b'' if self.sent_head else self._head(None)
        out += self._frame(data)
        if out:
            self.connection.sock.sendall(out)

    def send_whole(self, body):
        """A body known in full before its head (a list of one item): head and body in one write."""
        self.connection.sock.sendall(self._head(len(body)) + self._frame(body))

    def sendfile(self, wrapper):
        """A FileWrapper over a real file: os.sendfile, from the file's position to its end."""
        fd = wrapper.fileno()
        try:
            offset = os.lseek(fd, 0, os.SEEK_CUR)
            size = os.fstat(fd).st_size - offset
        except OSError:
            return False
        if not self.sent_head:
            self.connection.sock.sendall(self._head(size))
        if self.bodyless:
            return True
        # The head was sized from the file (or by the app's Content-Length): never chunked here.
        count = min(size, self.length - self.sent)
        out = self.connection.sock.fileno()
        while count > 0:
            sent = os.sendfile(out, fd, offset, count)
            if sent == 0:
                break
            offset += sent
            count -= sent
            self.sent += sent
        return True

    def finish(self):
        out = b'' if self.sent_head else self._head(0)
        if self.chunked and not self.bodyless:
            out += b'0\r\n\r\n'
        elif not self.bodyless and self.sent != self.length:
            self.broken = True  # fewer bytes than its Content-Length: the edge sees the connection end early
        if out:
            self.connection.sock.sendall(out)


def parse_vars(packet):
    """The vars as native strings (PEP 3333: latin-1). Sizes read by indexing, which is cheaper than struct per field."""
    environ = {}
    text = packet.decode('latin-1')  # one decode; every size byte maps to one character
    position = 0
    end = len(text)
    while position < end:
        key_size = packet[position] | (packet[position + 1] << 8)
        position += 2
        key = text[position : position + key_size]
        position += key_size
        value_size = packet[position] | (packet[position + 1] << 8)
        position += 2
        environ[key] = text[position : position + value_size]
        position += value_size
    return environ


def load_app(spec, cwd):
    """'module:callable' (gunicorn's form; 'module' alone means 'module:application'; 'module:factory()' calls a factory)."""
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    module_name, _, attribute = spec.partition(':')
    attribute = attribute or 'application'
    module = importlib.import_module(module_name)
    call = attribute.endswith('()')
    target = module
    for part in (attribute[:-2] if call else attribute).split('.'):
        if not hasattr(target, part):
            raise LookupError('%s has no attribute %r (expected "module:callable")' % (module_name, attribute))
        target = getattr(target, part)
    if call:
        target = target()
    if not callable(target):
        raise LookupError('%s:%s is not callable (expected a WSGI application)' % (module_name, attribute))
    return target


def rss_bytes():
    try:
        with open('/proc/self/statm') as statm:
            return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):
        return 0


class Worker:
    def __init__(self, settings, ipc):
        self.settings = settings
        self.ipc = ipc
        self.errors = ErrorStream(ipc)
        self.app = None
        self.threads = max(1, int(settings.get('threads', 1)))
        self.max_requests = int(settings.get('maxRequests', 0))
        self.requests = 0
        self.lock = threading.Lock()
        #: Start times of the requests in progress, by connection.
        self.busy = {}
        self.connections = set()
        self.draining = False
        self.drain_deadline = None
        self.retiring = False
        self.selector = selectors.DefaultSelector()
        self.listener = None
        self.pool = None
        self.wakeup_read, self.wakeup_write = socket.socketpair()
        self.returned = []
        self.base_environ = {
            'SCRIPT_NAME': '',
            'PATH_INFO': '/',
            'QUERY_STRING': '',
            'SERVER_PROTOCOL': 'HTTP/1.1',
            'wsgi.version': (1, 0),
            'wsgi.url_scheme': 'http',
            'wsgi.input_terminated': True,
            'wsgi.errors': self.errors,
            'wsgi.multithread': self.threads > 1,
            'wsgi.multiprocess': True,
            'wsgi.run_once': False,
            'wsgi.file_wrapper': FileWrapper,
        }

    # --- the arbiter's side ---------------------------------------------------------------

    def log(self, level, message):
        self.ipc.send({'type': 'portico:log', 'level': level, 'message': message})

    def tick(self):
        with self.lock:
            oldest = min(self.busy.values()) if self.busy else None
            requests = self.requests
        self.ipc.send({'type': 'portico:tick', 'requests': requests, 'rss': rss_bytes(), 'busySince': None if oldest is None else int(oldest * 1000)})

    def ticker(self):
        while True:
            time.sleep(TICK_SECONDS)
            self.tick()

    def on_message(self, message):
        kind = message.get('type')
        if kind == 'portico:stop':
            self.drain(float(message.get('graceMs', self.settings['gracefulTimeoutMs'])) / 1000)
        elif kind == 'portico:retire-ack':
            self.drain(self.settings['gracefulTimeoutMs'] / 1000)

    def drain(self, grace_seconds):
        """No new connection; idle ones close now (the edge let go of this worker first); busy ones finish, for at most the grace."""
        if self.draining:
            return
        self.draining = True
        self.drain_deadline = time.monotonic() + grace_seconds
        if self.listener is not None:
            self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None
            try:
                os.unlink(self.settings['socketPath'])
            except OSError:
                pass
        for connection in list(self.connections):
            if not connection.busy:
                self.close(connection)

    # --- serving --------------------------------------------------------------------------

    def close(self, connection):
        if connection in self.connections:
            self.connections.discard(connection)
            try:
                self.selector.unregister(connection.sock)
            except (KeyError, ValueError):
                pass
        connection.sock.close()

    def accept(self):
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(True)
        connection = Connection(sock)
        self.connections.add(connection)
        self.selector.register(sock, selectors.EVENT_READ, connection)

    def readable(self, connection):
        """A connection has bytes (or closed): its next request."""
        try:
            if not connection.fill():
                self.close(connection)
                return
        except OSError:
            self.close(connection)
            return
        if self.pool is None:
            # Sync: served inline, so the connection stays registered (no epoll_ctl twice per request).
            connection.busy = True
            self.serve(connection)
            connection.busy = False
            if connection in self.connections:
                if self.draining:
                    self.close(connection)
                elif connection.buffer:
                    self.readable_buffered(connection)
            return
        self.selector.unregister(connection.sock)
        self.dispatch(connection)

    def readable_buffered(self, connection):
        """Sync: requests already read with the last one's bytes, served before waiting again."""
        while connection.buffer and connection in self.connections and not self.draining:
            connection.busy = True
            self.serve(connection)
            connection.busy = False
        if self.draining and connection in self.connections:
            self.close(connection)

    def dispatch(self, connection):
        """Thread pool (`threads`): the connection is off the selector while a thread serves its request."""
        connection.busy = True
        self.pool.submit(self.serve_in_thread, connection)

    def serve_in_thread(self, connection):
        self.serve(connection)
        with self.lock:
            self.returned.append(connection)
        try:
            self.wakeup_write.send(b'.')
        except OSError:
            pass

    def release(self, connection):
        """A request is done: the connection waits for the next one, or closes."""
        connection.busy = False
        if connection not in self.connections:
            return
        if self.draining:
            self.close(connection)
        elif connection.buffer:
            self.dispatch(connection)  # the next request came with the last one's bytes
        else:
            self.selector.register(connection.sock, selectors.EVENT_READ, connection)

    def serve(self, connection):
        """One request on `connection` (its first bytes are in the buffer)."""
        started = time.time()
        with self.lock:
            self.busy[connection] = started
        keep = False
        try:
            keep = self.handle(connection)
        except Exception:  # noqa: BLE001 - the connection's own failure (the edge left, a bad packet)
            keep = False
        finally:
            with self.lock:
                self.busy.pop(connection, None)
                self.requests += 1
                requests = self.requests
            connection.served += 1
            if not keep:
                self.close(connection)
            if self.max_requests and requests >= self.max_requests and not self.retiring:
                self.retiring = True
                self.ipc.send({'type': 'portico:retiring', 'requests': requests})

    def environ(self, connection):
        header = connection.read_exact(4)
        modifier1 = header[0]
        if modifier1 != 0:
            raise ValueError('uwsgi modifier1 %d: only 0 (WSGI) is served' % modifier1)
        # The keys every request has, from one dict made once; the request's vars over them.
        environ = self.base_environ.copy()
        environ.update(parse_vars(connection.read_exact(header[1] | (header[2] << 8))))
        length = environ.get('CONTENT_LENGTH', '')
        if environ.get('HTTPS', '').lower() in ('on', '1'):
            environ['wsgi.url_scheme'] = 'https'
        environ['wsgi.input'] = Input(connection, int(length) if length.isdigit() else 0)
        return environ

    def handle(self, connection):
        """Serves one request; True when the connection may carry the next one."""
        environ = self.environ(connection)
        response = Response(connection, environ.get('REQUEST_METHOD'), self)
        result = None
        try:
            result = self.app(environ, response.start_response)
            self.send_body(response, result)
            response.finish()
        except Exception as error:  # noqa: BLE001 - an app's exception is a 500, never the worker's end
            if isinstance(error, (BrokenPipeError, ConnectionResetError)):
                return False  # the edge went away (its client left)
            self.report(environ, error)
            if response.sent_head:
                return False  # the head is gone: cutting the connection is the only honest signal
            response = Response(connection, environ.get('REQUEST_METHOD'), self)
            response.start_response('500 Internal Server Error', [('Content-Type', 'text/plain; charset=utf-8')])
            response.send_whole(b'Internal Server Error\n')
        finally:
            if result is not None and hasattr(result, 'close'):
                try:
                    result.close()
                except Exception as error:  # noqa: BLE001
                    self.report(environ, error)
        environ['wsgi.input'].drain()
        return not response.broken

    @staticmethod
    def send_body(response, result):
        """The app's iterable: a file by os.sendfile, a one-item list with its head in one write, anything else item by item."""
        if isinstance(result, FileWrapper) and result.fileno() is not None and response.sendfile(result):
            return
        if isinstance(result, (list, tuple)) and len(result) <= 1 and not response.sent_head and response.status is not None:
            body = result[0] if result else b''
            if not isinstance(body, bytes):
                raise TypeError('a WSGI response body item must be bytes, got %s' % type(body).__name__)
            response.send_whole(body)
            return
        for data in result:
            if data:
                response.write(data)

    def report(self, environ, error):
        text = ''.join(traceback.format_exception(type(error), error, error.__traceback__))
        self.log('error', 'app error on %s %s:\n%s' % (environ.get('REQUEST_METHOD'), environ.get('REQUEST_URI', environ.get('PATH_INFO')), text.rstrip()))

    # --- the loop -------------------------------------------------------------------------

    def run(self):
        settings = self.settings
        try:
            os.chdir(settings['cwd'])
            self.app = load_app(settings['wsgi'], settings['cwd'])
        except Exception as error:  # noqa: BLE001 - any failure to load is the boot's failure
            code = 'ERR_APP_EXPORT' if isinstance(error, LookupError) and not isinstance(error, ImportError) else 'ERR_APP_IMPORT'
            text = ''.join(traceback.format_exception(type(error), error, error.__traceback__))
            self.log('error', 'wsgi worker: the app failed to load:\n' + text.rstrip())
            self.ipc.send({'type': 'portico:boot-error', 'code': code, 'message': '%s: %s' % (type(error).__name__, error)})
            os._exit(3 if code == 'ERR_APP_EXPORT' else 4)
        if self.threads > 1:
            self.pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix='portico-wsgi')
        path = settings['socketPath']
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1024)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, 'listener')
        self.selector.register(self.ipc.sock, selectors.EVENT_READ, 'ipc')
        self.wakeup_read.setblocking(False)
        self.selector.register(self.wakeup_read, selectors.EVENT_READ, 'wakeup')
        threading.Thread(target=self.ticker, name='portico-heartbeat', daemon=True).start()
        self.ipc.send({'type': 'portico:ready', 'kind': 'wsgi', 'via': 'uwsgi'})
        while True:
            if self.draining:
                with self.lock:
                    busy = len(self.busy) + len(self.returned)
                if not busy and not any(c.busy for c in self.connections):
                    break
                if time.monotonic() > self.drain_deadline:
                    self.log('warn', 'wsgi worker: graceful timeout reached, exiting with %d requests in flight' % busy)
                    break
            for key, _events in self.selector.select(timeout=0.25 if self.draining else TICK_SECONDS):
                what = key.data
                if what == 'listener':
                    if self.listener is not None:
                        self.accept()
                elif what == 'ipc':
                    messages = self.ipc.receive()
                    if messages is None:
                        self.exit_orphaned()
                    for message in messages:
                        self.on_message(message)
                elif what == 'wakeup':
                    try:
                        self.wakeup_read.recv(4096)
                    except (BlockingIOError, InterruptedError):
                        pass
                    with self.lock:
                        returned, self.returned = self.returned, []
                    for connection in returned:
                        self.release(connection)
                else:
                    self.readable(what)
        self.errors.flush()
        os._exit(0)

    def exit_orphaned(self):
        """The arbiter is gone (the IPC channel closed): nobody will send requests or reap us."""
        try:
            os.unlink(self.settings['socketPath'])
        except OSError:
            pass
        os._exit(0)


def main():
    if len(sys.argv) != 2 or 'NODE_CHANNEL_FD' not in os.environ:
        sys.stderr.write('portico: portico_wsgi.py is started by portico (apps.NAME.wsgi, portico app --wsgi), not directly\n')
        return 2
    settings = json.loads(sys.argv[1])
    ipc = IPC(int(os.environ.pop('NODE_CHANNEL_FD')))
    # The app's own child processes are not Portico's workers.
    os.environ.pop('NODE_CHANNEL_SERIALIZATION_MODE', None)
    worker = Worker(settings, ipc)
    # What the app prints to stderr (logging's default handler, Django's request errors) goes to
    # Portico's error log too (gunicorn's --capture-output), one record per line written.
    sys.stderr = ErrorStream(ipc)

    def on_term(_signum, _frame):
        # A SIGTERM portico did not send (the whole process group): the arbiter hears of it
        # first, so it does not count the exit as a crash.
        ipc.send({'type': 'portico:signalled', 'signal': 'SIGTERM'})
        worker.drain(settings['gracefulTimeoutMs'] / 1000)

    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C and a hangup reach the whole process group; the arbiter decides how workers stop.
    for name in ('SIGINT', 'SIGHUP', 'SIGTTIN', 'SIGTTOU'):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    worker.tick()
    worker.run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
