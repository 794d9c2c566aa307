"""Helper programs for the VPN's netns tests, run inside the namespaces with the test's
interpreter: python probe.py COMMAND ARGS... (see vpn_support.probe)."""
import hashlib, json, random, socket, struct, sys, time
cmd, args = sys.argv[1], sys.argv[2:]

if cmd == "tcp-server":                 # ADDR PORT: print length and sha256 of one connection
    s = socket.socket(socket.AF_INET6 if ":" in args[0] else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args[0], int(args[1]))); s.listen(1)
    print("listening", flush=True)
    c, _ = s.accept(); h = hashlib.sha256(); n = 0
    while True:
        data = c.recv(65536)
        if not data:
            break
        h.update(data); n += len(data)
    print(json.dumps({"bytes": n, "sha256": h.hexdigest()}), flush=True)

elif cmd == "tcp-client":               # ADDR PORT NBYTES: send seeded random data, print its sha256
    rnd = random.Random(7); n = int(args[2]); h = hashlib.sha256()
    c = socket.create_connection((args[0], int(args[1])), timeout=30)
    sent = 0
    while sent < n:
        chunk = rnd.randbytes(min(65536, n - sent)); c.sendall(chunk); h.update(chunk); sent += len(chunk)
    c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
    print(json.dumps({"bytes": sent, "sha256": h.hexdigest()}), flush=True)

elif cmd == "udp-sink":                 # ADDR PORT: print every datagram received, one per line
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((args[0], int(args[1])))
    print("listening", flush=True)
    while True:
        print(s.recv(65536).decode(errors="replace"), flush=True)

elif cmd == "udp-send":                 # ADDR PORT PREFIX COUNT: numbered messages, 50 ms apart
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(int(args[3])):
        s.sendto(("%s-%d" % (args[2], i)).encode(), (args[0], int(args[1]))); time.sleep(0.05)

elif cmd == "capture":                  # IFACE PORT COUNT OUTFILE: UDP payloads to PORT seen on IFACE
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800)); s.bind((args[0], 0))
    port, count, got = int(args[1]), int(args[2]), []
    print("capturing", flush=True)
    while len(got) < count:
        pkt, addr = s.recvfrom(65536)
        if addr[2] == socket.PACKET_OUTGOING or pkt[9] != 17:
            continue
        ihl = (pkt[0] & 15) * 4
        if struct.unpack_from("!H", pkt, ihl + 2)[0] == port:
            got.append(pkt[ihl + 8:].hex())
    with open(args[3], "w") as f:
        f.write("\n".join(got))
    print("captured", len(got), flush=True)

elif cmd == "inject":                   # ADDR PORT FILE|garbage: replay payloads / send junk, at app level
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    dest = (args[0], int(args[1]))
    if args[2] == "garbage":
        rnd = random.Random(3)
        sizes = [0, 1, 15, 16, 39, 40, 41, 56, 1400, 1500, 9000, 65507] + [rnd.randrange(0, 2000) for _ in range(300)]
        for n in sizes:
            s.sendto(rnd.randbytes(n), dest)
        print("sent", len(sizes), flush=True)
    else:
        payloads = [bytes.fromhex(line) for line in open(args[2]).read().split()]
        for _ in range(3):
            for p in payloads:
                s.sendto(p, dest)
        print("sent", 3 * len(payloads), flush=True)
