using BpfJit.IlEmitter;
using BpfJit.Cli.Capture;
using BpfJit.Cli.Hosting;
using BpfJit.Cli.Output;
using BpfJit.Runtime.Scenarios;
using BpfJit.Runtime.SkLookup;

namespace BpfJit.Cli.Commands;

/// <summary><c>bpfjit replay CAPTURE --scenario FILE [--engine interpreter|jit] [--json] [--quiet] [--stats]</c></summary>
public static class ReplayCommand
{
    /// <summary>The verb's description.</summary>
    public static CommandInfo Info { get; } = new("replay", "run the socket lookup of each packet of a pcap/pcapng capture", """
        usage: bpfjit replay CAPTURE.pcap|CAPTURE.pcapng --scenario FILE.json [--engine interpreter|jit] [--json] [--quiet] [--stats]

        Builds the scenario's socket table, maps and attached programs (its own lookups are not run),
        then for each IPv4/IPv6 TCP SYN or UDP datagram of the capture runs the lookup the kernel
        would: established sockets, the SK_LOOKUP programs, then listeners. Prints the decision per
        packet (socket NAME, refused, none; other packets are skipped with the reason) and a summary
        table: packets per socket, refused, none, skipped. --quiet prints only the summary.
        --stats turns on run statistics for the replay (BPF_ENABLE_STATS) and adds, per attached program
        in run order, its run_cnt and run_time_ns, as bpftool prog show reports them (the first runs
        include .NET compiling the code they reach on first call), and its faults: runs that faulted
        and counted as SK_DROP for their packet (docs/sk-lookup-runtime.md, "Faults").
        Link types: Ethernet (with VLAN tags), raw IP, Linux cooked (v1, v2), BSD loopback. A pcapng
        packet's interface id N gives ingress_ifindex N+1; pcap packets have ingress_ifindex 1.
        Packets are numbered from 1, as Wireshark does.

        output:     3  tcp 10.0.0.1:50000 -> 1.2.3.1:443: socket nginx-ssl
        --json:  {"capture": "c.pcapng", "format": "pcapng", "scenario": "s.json", "engine": "jit",
                  "packets": [{"number": 3, "proto": "tcp", "from": "10.0.0.1:50000", "to": "1.2.3.1:443",
                               "ifindex": 1, "decision": "socket", "socket": "nginx-ssl"},
                              {"number": 4, "decision": "skipped", "reason": "..."}],
                  "summary": {"sockets": {"nginx-ssl": 1}, "refused": 0, "none": 0, "skipped": 1, "total": 2},
                  "programs": [{"name": "dispatcher", "id": 7, "run_cnt": 1, "run_time_ns": 2310, "faults": 0}]}   (with --stats)
        Exit code 0 when every packet was read, 2 for bad usage, a bad scenario or a malformed capture
        (one line on stderr naming the file, the packet number and what is wrong).

        examples:
          bpfjit replay examples/captures/dispatcher.pcapng --scenario examples/dispatcher.json
          bpfjit replay examples/captures/dispatcher.pcap --scenario examples/dispatcher.json --engine jit --json
          bpfjit replay examples/captures/dispatcher.pcapng --scenario examples/captures/replay.json --quiet --stats
        """, Run)
    {
        Operands = "CAPTURE",
        Options =
        [
            Opt.Value("--scenario", "FILE.json", "the sockets, maps and attached programs (required)"),
            Opt.Value("--engine", "ENGINE", "interpreter (default) or jit", "interpreter", "jit"),
            Opt.Flag("--quiet", "only the summary"),
            Opt.Flag("--stats", "lookup time statistics"),
            Opt.Json(),
        ],
    };

    static int Run(Args args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Positional.Count != 1) throw new UsageException(args.Positional.Count == 0 ? "no CAPTURE given" : "give exactly one CAPTURE");
        string scenarioPath = args.Get("--scenario") ?? throw new UsageException("--scenario is required");
        var engine = BpfEngines.Get(args.Choice("--engine", "interpreter", "interpreter", "jit"));
        string capture = args.Positional[0];
        var (format, packets, damage) = CaptureReader.Read(capture);
        // Damaged before its first packet: nothing to replay, only the error.
        if (damage != null && packets.Count == 0) throw damage;
        using var env = ScenarioBuilder.Build(scenarioPath, engine);
        // Run statistics cost a counter update per run, so they are on only when asked for, as in the kernel.
        bool withStats = args.Has("--stats");
        using var stats = withStats ? BpfStats.Enable() : null;

        var rows = new List<Row>();
        foreach (var p in packets)
        {
            DecodedPacket decoded;
            try
            {
                decoded = PacketDecoder.Decode(p.LinkType, p.Data.Span, p.Interface + 1);
            }
            catch (FormatException e)
            {
                throw new CaptureFormatException($"{capture}: packet {p.Number}: {e.Message}");
            }
            if (decoded.Packet is not { } packet)
            {
                rows.Add(new Row(p.Number, null, "skipped", null, decoded.SkipReason));
                continue;
            }
            var result = env.Namespace.Lookup(packet);
            rows.Add(result.Outcome switch
            {
                LookupOutcome.Socket => new Row(p.Number, packet, "socket", env.NameOf(result.Socket!), null),
                LookupOutcome.Refused => new Row(p.Number, packet, "refused", null, null),
                _ => new Row(p.Number, packet, "none", null, null),
            });
        }

        var perSocket = rows.Where(r => r.Socket != null).GroupBy(r => r.Socket!).ToDictionary(g => g.Key, g => g.Count());
        // Sockets that got nothing are listed too, in the scenario's order.
        var order = env.Sockets.Keys.Concat(perSocket.Keys.Where(k => !env.Sockets.ContainsKey(k))).ToList();
        int Count(string decision) => rows.Count(r => r.Decision == decision);
        // Each attached program once (a program may be linked more than once), in run order.
        var programs = withStats
            ? env.Namespace.SkLookup.Links.Select(l => l.Program).DistinctBy(p => p.Id).ToList()
            : [];
        static long Nanoseconds(SkLookupProgram p) => (long)p.RunTime.TotalNanoseconds;

        if (args.Has("--json"))
        {
            JsonOutput.Write(stdout, w =>
            {
                w.WriteStartObject();
                w.WriteString("capture", capture);
                w.WriteString("format", format);
                w.WriteString("scenario", scenarioPath);
                w.WriteString("engine", engine.Name);
                w.WriteStartArray("packets");
                foreach (var r in rows)
                {
                    w.WriteStartObject();
                    w.WriteNumber("number", r.Number);
                    if (r.Packet is { } pk)
                    {
                        w.WriteString("proto", PacketOptions.ProtoName(pk.Protocol));
                        w.WriteString("from", pk.From.ToString());
                        w.WriteString("to", pk.To.ToString());
                        w.WriteNumber("ifindex", pk.IngressIfindex);
                    }
                    w.WriteString("decision", r.Decision);
                    if (r.Socket != null) w.WriteString("socket", r.Socket);
                    if (r.Reason != null) w.WriteString("reason", r.Reason);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteStartObject("summary");
                w.WriteStartObject("sockets");
                foreach (var name in order) w.WriteNumber(name, perSocket.GetValueOrDefault(name));
                w.WriteEndObject();
                w.WriteNumber("refused", Count("refused"));
                w.WriteNumber("none", Count("none"));
                w.WriteNumber("skipped", Count("skipped"));
                w.WriteNumber("total", rows.Count);
                w.WriteEndObject();
                if (withStats)
                {
                    w.WriteStartArray("programs");
                    foreach (var prog in programs)
                    {
                        w.WriteStartObject();
                        w.WriteString("name", prog.Name);
                        w.WriteNumber("id", prog.Id);
                        w.WriteNumber("run_cnt", prog.RunCount);
                        w.WriteNumber("run_time_ns", Nanoseconds(prog));
                        w.WriteNumber("faults", prog.FaultCount);
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                }
                if (damage != null)
                {
                    w.WriteString("error", damage.Message);
                    w.WriteNumber("exit", Cli.BadInput);
                }
                w.WriteEndObject();
            });
            return Damaged(damage, stderr);
        }

        if (!args.Has("--quiet"))
        {
            foreach (var r in rows)
                stdout.WriteLine(r.Packet is { } pk
                    ? $"{r.Number,5}  {pk}: {(r.Socket != null ? $"socket {r.Socket}" : r.Decision)}"
                    : $"{r.Number,5}  skipped: {r.Reason}");
            stdout.WriteLine();
        }
        var table = order.Select(n => (Name: $"socket {n}", Count: perSocket.GetValueOrDefault(n))).ToList();
        table.Add(("refused", Count("refused")));
        table.Add(("none", Count("none")));
        table.Add(("skipped", Count("skipped")));
        int width = Math.Max("decision".Length, table.Max(t => t.Name.Length));
        stdout.WriteLine($"{"decision".PadRight(width)}  packets");
        foreach (var (name, count) in table) stdout.WriteLine($"{name.PadRight(width)}  {count,7}");
        stdout.WriteLine($"{"total".PadRight(width)}  {rows.Count,7}");
        if (programs.Count > 0)
        {
            int nameWidth = Math.Max("program".Length, programs.Max(p => p.Name.Length));
            stdout.WriteLine();
            stdout.WriteLine($"{"program".PadRight(nameWidth)}  {"id",5}  {"run_cnt",9}  {"run_time_ns",12}  {"faults",6}");
            foreach (var prog in programs)
                stdout.WriteLine($"{prog.Name.PadRight(nameWidth)}  {prog.Id,5}  {prog.RunCount,9}  {Nanoseconds(prog),12}  {prog.FaultCount,6}");
        }
        return Damaged(damage, stderr);
    }

    // A capture damaged part-way: the packets before the damage were replayed and printed; then the error, exit 2.
    static int Damaged(CaptureFormatException? damage, TextWriter stderr)
    {
        if (damage == null) return Cli.Ok;
        stderr.WriteLine($"bpfjit replay: {damage.Message.ReplaceLineEndings(" ")} (the packets before it are shown)");
        return Cli.BadInput;
    }

    sealed record Row(int Number, BpfJit.Runtime.Sockets.Packet? Packet, string Decision, string? Socket, string? Reason);
}
