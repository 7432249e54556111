# The Flask app of the bench's Python stacks (issue #19): the classic "Hello, World!", served by
# gunicorn (WSGI over HTTP) and uWSGI (the uwsgi protocol) behind nginx or Portico.
from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello, World!"
