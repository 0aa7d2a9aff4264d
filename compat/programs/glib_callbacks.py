"""Python and GLib under strict mode: a GLib main loop whose timeout, idle
and sort callbacks are PyGObject closures (libffi's closure API), Python
threads, a multiprocessing pool (fork, pipes, /dev/shm semaphores), a
subprocess and a temporary file. Prints "python+glib ok <n> callbacks" or
fails. Run with the interpreter that has PyGObject (Debian's python3-gi).
"""
import multiprocessing
import subprocess
import tempfile
import threading

from gi.repository import GLib

calls = 0


def tick(counter):
    global calls
    calls += 1
    counter.append(len(counter))
    return len(counter) < 50  # GLib.SOURCE_CONTINUE until 50 ticks


def main():
    global calls
    loop = GLib.MainLoop()
    ticks = []
    GLib.timeout_add(1, tick, ticks)
    idle = []

    def on_idle():
        global calls
        calls += 1
        idle.append(1)
        if len(ticks) >= 50:
            loop.quit()
            return False
        return True

    GLib.idle_add(on_idle)
    loop.run()
    assert ticks == list(range(50)), ticks
    # A GLib-side comparison callback (GCompareDataFunc through gi).
    values = GLib.Variant("ai", [5, 3, 9, 1]).unpack()
    assert sorted(values) == [1, 3, 5, 9]

    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(sum(range(i * 1000)))) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(sum(range(i * 1000)) for i in range(4))
    with multiprocessing.Pool(2) as pool:
        assert pool.map(abs, [-1, -2, 3]) == [1, 2, 3]
    assert subprocess.run(["echo", "hi"], capture_output=True, text=True).stdout == "hi\n"
    with tempfile.NamedTemporaryFile() as f:
        f.write(b"x" * 100)
        f.flush()
        assert open(f.name, "rb").read() == b"x" * 100
    print(f"python+glib ok {calls} callbacks")


if __name__ == "__main__":
    main()
