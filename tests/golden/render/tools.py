"""The functions behind the golden files' tools, so that `mnc check` finds them and the
goldens show only the diagnostics they are about."""


def pay(order_id, *, key=None):
    return {"id": key, "order_id": order_id}


def lookup(order_id):
    return {"id": order_id}


def lookup2(id):
    return {"id": id}


def fetch(id):
    return {"id": id}


def send(order):
    return True
