PRAGMA application_id = 1835950897;
PRAGMA user_version = 6;
BEGIN TRANSACTION;
CREATE TABLE "checkpoints" (
   "run_id" TEXT NOT NULL,
   "checkpoint_id" TEXT NOT NULL,
   "name" TEXT NOT NULL,
   "request" TEXT NOT NULL,
   "status" TEXT NOT NULL,
   "decision" TEXT NOT NULL,
   "decided_by" TEXT,
   "opened_at" REAL NOT NULL,
   "decided_at" REAL,
   PRIMARY KEY ("run_id", "checkpoint_id")
) STRICT;
CREATE TABLE "cursors" (
   "run_id" TEXT NOT NULL,
   "branch" TEXT NOT NULL,
   "cursor" TEXT NOT NULL,
   PRIMARY KEY ("run_id", "branch")
) STRICT;
INSERT INTO "cursors" VALUES('legacy-mirror','','{"at":"sent","frames":{},"pending":{"effect":{"args":{"url":"http://orders.example/orders","body":null,"key":"mirror:o-1","headers":[]},"key":"http_post:mirror:o-1","hash":"6965db13bd5e5b34034b399f77ef2327e6d43abc58ba740763eba63bb75f46b0","attempt":0}},"scope":"","spawn":null,"index":0}');
CREATE TABLE "events" (
   "run_id" TEXT NOT NULL,
   "seq" INTEGER NOT NULL,
   "at" REAL NOT NULL,
   "kind" TEXT NOT NULL,
   "state" TEXT,
   "branch" TEXT NOT NULL,
   "data" TEXT NOT NULL,
   PRIMARY KEY ("run_id", "seq")
) STRICT;
INSERT INTO "events" VALUES('legacy-mirror',1,1.79652676209701299666e+09,'started',NULL,'','{"workflow":"mirror","args":{"order_id":"o-1"}}');
INSERT INTO "events" VALUES('legacy-mirror',2,1.79652676209701299666e+09,'intent','sent','','{"effect":"std.http.http_post","key":"http_post:mirror:o-1","args":{"url":"http://orders.example/orders","body":null,"key":"mirror:o-1","headers":[]}}');
CREATE TABLE "ledger" (
   "scope" TEXT NOT NULL,
   "key" TEXT NOT NULL,
   "args_hash" TEXT NOT NULL,
   "status" TEXT NOT NULL,
   "result" TEXT NOT NULL,
   "run_id" TEXT NOT NULL,
   "state" TEXT,
   "created_at" REAL NOT NULL,
   "updated_at" REAL NOT NULL,
   PRIMARY KEY ("scope", "key")
) STRICT;
INSERT INTO "ledger" VALUES('legacy-mirror','http_post:mirror:o-1','6965db13bd5e5b34034b399f77ef2327e6d43abc58ba740763eba63bb75f46b0','intent','null','legacy-mirror','sent',1.79652676209701299666e+09,1.79652676209701299666e+09);
CREATE TABLE "list_items" (
   "run_id" TEXT NOT NULL,
   "branch" TEXT NOT NULL,
   "name" TEXT NOT NULL,
   "idx" INTEGER NOT NULL,
   "value" TEXT NOT NULL,
   PRIMARY KEY ("run_id", "branch", "name", "idx")
) STRICT;
CREATE TABLE "programs" (
   "ir_hash" TEXT PRIMARY KEY NOT NULL,
   "ir" TEXT NOT NULL,
   "created_at" REAL NOT NULL
) STRICT;
INSERT INTO "programs" VALUES('fd3b9b637310c480fc7ad1fa64b382a0fd9366d3096e13a10735905fe1a3407d','{
  "ir_version": "1",
  "hash": "fd3b9b637310c480fc7ad1fa64b382a0fd9366d3096e13a10735905fe1a3407d",
  "source": {
    "file": "mirror.mn",
    "dir": "/work/wt/h14-wire/tests/wire",
    "tool_modules": [
      {
        "impl_dir": "../../../../../tmp/h14-old/stdlib",
        "module": "mnlang.stdlib_tools.http",
        "path": "../../../../../tmp/h14-old/stdlib/mnlang/stdlib_tools/http.py"
      }
    ]
  },
  "types": {
    "std.http.HttpResponse": {
      "kind": "record",
      "name": "std.http.HttpResponse",
      "fields": [
        {
          "name": "status",
          "type": {
            "kind": "int",
            "args": []
          }
        },
        {
          "name": "headers",
          "type": {
            "kind": "map",
            "args": [
              {
                "kind": "str",
                "args": []
              }
            ]
          }
        },
        {
          "name": "body",
          "type": {
            "kind": "str",
            "args": []
          }
        },
        {
          "name": "data",
          "type": {
            "kind": "json",
            "args": []
          }
        }
      ],
      "span": {
        "file": "/tmp/h14-old/stdlib/http.mn",
        "line": 15,
        "col": 1,
        "end_line": 20,
        "end_col": 2
      }
    }
  },
  "tools": {
    "std.http.http_get": {
      "name": "std.http.http_get",
      "params": [
        {
          "name": "url",
          "type": {
            "kind": "str",
            "args": []
          }
        },
        {
          "name": "headers",
          "type": {
            "kind": "list",
            "args": [
              {
                "kind": "str",
                "args": []
              }
            ]
          },
          "default": {
            "node": "list",
            "items": []
          }
        }
      ],
      "returns": {
        "kind": "record",
        "name": "std.http.HttpResponse",
        "args": []
      },
      "impl": "mnlang.stdlib_tools.http:http_get",
      "impl_dir": "../../../../../tmp/h14-old/stdlib",
      "timeout_ms": 30000,
      "retry": {
        "attempts": 3,
        "backoff_ms": 1000,
        "factor": 2.0,
        "max_delay_ms": 10000,
        "jitter": true,
        "on": [
          "timeout",
          "transient"
        ]
      },
      "isolation": "thread",
      "span": {
        "file": "/tmp/h14-old/stdlib/http.mn",
        "line": 33,
        "col": 1,
        "end_line": 37,
        "end_col": 2
      }
    }
  },
  "effects": {
    "std.http.http_post": {
      "name": "std.http.http_post",
      "params": [
        {
          "name": "url",
          "type": {
            "kind": "str",
            "args": []
          }
        },
        {
          "name": "body",
          "type": {
            "kind": "json",
            "args": []
          }
        },
        {
          "name": "key",
          "type": {
            "kind": "str",
            "args": []
          }
        },
        {
          "name": "headers",
          "type": {
            "kind": "list",
            "args": [
              {
                "kind": "str",
                "args": []
              }
            ]
          },
          "default": {
            "node": "list",
            "items": []
          }
        }
      ],
      "returns": {
        "kind": "record",
        "name": "std.http.HttpResponse",
        "args": []
      },
      "impl": "mnlang.stdlib_tools.http:http_post",
      "impl_dir": "../../../../../tmp/h14-old/stdlib",
      "timeout_ms": 30000,
      "retry": {
        "attempts": 3,
        "backoff_ms": 1000,
        "factor": 2.0,
        "max_delay_ms": 10000,
        "jitter": true,
        "on": [
          "timeout",
          "transient"
        ]
      },
      "isolation": "thread",
      "span": {
        "file": "/tmp/h14-old/stdlib/http.mn",
        "line": 40,
        "col": 1,
        "end_line": 45,
        "end_col": 2
      },
      "key": {
        "node": "template",
        "parts": [
          "http_post:",
          {
            "node": "var",
            "name": "key"
          }
        ]
      },
      "once": false,
      "scope": "run",
      "requires": []
    }
  },
  "agents": {},
  "events": {},
  "schedules": {},
  "workflows": {
    "mirror": {
      "name": "mirror",
      "params": [
        {
          "name": "order_id",
          "type": {
            "kind": "str",
            "args": []
          }
        }
      ],
      "returns": {
        "kind": "int",
        "args": []
      },
      "options": {},
      "start": "sent",
      "states": {
        "sent": {
          "kind": "call",
          "id": "sent",
          "span": {
            "file": "mirror.mn",
            "line": 5,
            "col": 3,
            "end_line": 5,
            "end_col": 78
          },
          "live": {
            "order_id": {
              "kind": "str",
              "args": []
            }
          },
          "callee": "std.http.http_post",
          "callee_kind": "effect",
          "args": {
            "url": {
              "node": "lit",
              "type": "str",
              "value": "http://orders.example/orders"
            },
            "body": {
              "node": "lit",
              "type": "null"
            },
            "key": {
              "node": "template",
              "parts": [
                "mirror:",
                {
                  "node": "var",
                  "name": "order_id"
                }
              ]
            },
            "headers": {
              "node": "list",
              "items": []
            }
          },
          "target": "sent",
          "retry": {
            "attempts": 3,
            "backoff_ms": 1000,
            "factor": 2.0,
            "max_delay_ms": 10000,
            "jitter": true,
            "on": [
              "timeout",
              "transient"
            ]
          },
          "timeout_ms": 30000,
          "next": "return"
        },
        "return": {
          "kind": "return",
          "id": "return",
          "span": {
            "file": "mirror.mn",
            "line": 6,
            "col": 3,
            "end_line": 6,
            "end_col": 21
          },
          "live": {
            "sent": {
              "kind": "record",
              "name": "std.http.HttpResponse",
              "args": []
            }
          },
          "value": {
            "node": "field",
            "obj": {
              "node": "var",
              "name": "sent"
            },
            "name": "status"
          }
        }
      },
      "span": {
        "file": "mirror.mn",
        "line": 4,
        "col": 1,
        "end_line": 7,
        "end_col": 2
      }
    }
  },
  "scenarios": {}
}
',1.79652676207198810573e+09);
CREATE TABLE run_args (run_id TEXT PRIMARY KEY REFERENCES runs (run_id), args TEXT NOT NULL);
INSERT INTO "run_args" VALUES('legacy-mirror','{"order_id":"o-1"}');
CREATE TABLE "runs" (
   "run_id" TEXT PRIMARY KEY NOT NULL,
   "workflow" TEXT NOT NULL,
   "workflow_class" TEXT NOT NULL DEFAULT '',
   "status" TEXT NOT NULL,
   "result" TEXT,
   "error" TEXT,
   "parent_run_id" TEXT,
   "ir_hash" TEXT NOT NULL DEFAULT '',
   "meta" TEXT NOT NULL DEFAULT '{}',
   "waiting_for" TEXT NOT NULL DEFAULT '[]',
   "cancel_requested" INTEGER NOT NULL DEFAULT 0,
   "last_seq" INTEGER NOT NULL DEFAULT 0,
   "lease_owner" TEXT,
   "lease_epoch" INTEGER NOT NULL DEFAULT 0,
   "lease_expires_at" REAL,
   "created_at" REAL NOT NULL,
   "updated_at" REAL NOT NULL,
   "finished_at" REAL
, run_limit INTEGER, queued INTEGER NOT NULL DEFAULT 0) STRICT;
INSERT INTO "runs" VALUES('legacy-mirror','mirror','','running',NULL,NULL,NULL,'fd3b9b637310c480fc7ad1fa64b382a0fd9366d3096e13a10735905fe1a3407d','{"source_dir":"/work/wt/h14-wire/tests/wire","tool_modules":{"../../../../../tmp/h14-old/stdlib/mnlang/stdlib_tools/http.py":null}}','[]',0,2,'vm:18764:25c0732f',1,1.79652682208800077443e+09,1.79652676207999444004e+09,1.79652676209701299666e+09,NULL,NULL,0);
CREATE TABLE "schedules" (
   "name" TEXT PRIMARY KEY NOT NULL,
   "workflow" TEXT NOT NULL,
   "ir_hash" TEXT NOT NULL,
   "source" TEXT NOT NULL,
   "spec" TEXT NOT NULL,
   "next_at" REAL NOT NULL,
   "last_at" REAL,
   "last_run_id" TEXT,
   "updated_at" REAL NOT NULL
) STRICT;
CREATE TABLE "signals" (
   "arrival" INTEGER PRIMARY KEY NOT NULL,
   "run_id" TEXT NOT NULL,
   "signal_id" TEXT NOT NULL,
   "name" TEXT NOT NULL,
   "payload" TEXT NOT NULL,
   "sent_at" REAL NOT NULL,
   "consumed_at" REAL
) STRICT;
CREATE TABLE "timers" (
   "run_id" TEXT NOT NULL,
   "timer_id" TEXT NOT NULL,
   "due_at" REAL NOT NULL,
   "payload" TEXT NOT NULL,
   PRIMARY KEY ("run_id", "timer_id")
) STRICT;
CREATE TABLE "variables" (
   "run_id" TEXT NOT NULL,
   "branch" TEXT NOT NULL,
   "name" TEXT NOT NULL,
   "value" TEXT,
   "is_list" INTEGER NOT NULL DEFAULT 0,
   "length" INTEGER NOT NULL DEFAULT 0,
   PRIMARY KEY ("run_id", "branch", "name")
) STRICT;
INSERT INTO "variables" VALUES('legacy-mirror','','order_id','"o-1"',0,0);
INSERT INTO "variables" VALUES('legacy-mirror','','$run','{"$v":{"spent":{"$m":"0"},"replies":{}}}',0,0);
CREATE TABLE workers (worker_id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, concurrency INTEGER NOT NULL, started_at REAL NOT NULL, heartbeat_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX "runs_by_status"
    ON "runs" ("status");
CREATE INDEX "runs_by_workflow"
    ON "runs" ("workflow");
CREATE INDEX "runs_by_workflow_class"
    ON "runs" ("workflow_class");
CREATE INDEX "runs_by_parent_run_id"
    ON "runs" ("parent_run_id");
CREATE INDEX "runs_by_created_at"
    ON "runs" ("created_at");
CREATE INDEX "ledger_by_run"
    ON "ledger" ("run_id");
CREATE UNIQUE INDEX "signals_by_id"
    ON "signals" ("run_id", "signal_id");
CREATE INDEX "signals_pending"
    ON "signals" ("run_id", "consumed_at");
CREATE INDEX "checkpoints_by_status"
    ON "checkpoints" ("status", "opened_at");
CREATE INDEX "timers_by_due"
    ON "timers" ("due_at");
CREATE INDEX "schedules_by_next_at"
    ON "schedules" ("next_at");
CREATE INDEX runs_cancel_requested ON runs (run_id) WHERE cancel_requested = 1;
CREATE INDEX signals_unread ON signals (run_id) WHERE consumed_at IS NULL;
CREATE INDEX runs_by_workflow_status ON runs (workflow, status);
CREATE INDEX runs_queued ON runs (run_id) WHERE queued = 1;
COMMIT;
