using BpfJit.Cli.Hosting;
using BpfJit.Cli.Output;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Cli.Commands;

/// <summary>
/// <c>bpfjit run FILTER.cbpf</c>: a classic BPF reuseport filter (SO_ATTACH_REUSEPORT_CBPF) in the <c>tcpdump -ddd</c>
/// text form, attached to a group of <c>--members N</c> new sockets on <c>--to</c> and run as the group runs it
/// (<c>run_bpf_filter</c>): the value it returns indexes the members, and past the last member (or for a packet shorter
/// than its transport header) the hash picks.
/// </summary>
static class ClassicRun
{
    /// <summary>True for a file the run verb takes as a classic filter (<c>.cbpf</c>).</summary>
    public static bool IsClassicFile(string path) => path.EndsWith(".cbpf", StringComparison.OrdinalIgnoreCase);

    /// <summary>Parses and checks the filter, sets up the group, runs the filter once and prints the receiving member.</summary>
    public static int Run(Args args, string path, Packet packet, TextWriter stdout)
    {
        foreach (var option in new[] { "--program", "--scenario", "--type", "--no-verify", "--repeat", "--dump-maps", "--engine" })
            if (args.Has(option))
                throw new UsageException($"{option} does not apply to a classic filter (.cbpf): it runs once on the classic interpreter, for --members new sockets");
        ClassicFilter filter;
        try
        {
            filter = ClassicFilter.Parse(File.ReadAllText(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{path}: {e.Message}");
        }
        catch (FormatException e)
        {
            throw new UsageException($"{path}: {e.Message}");
        }
        catch (SocketErrorException e)
        {
            // The kernel's refusal (bpf_check_classic): exit 1, as a verifier rejection.
            throw new ProgramRejectedException($"{path}: SO_ATTACH_REUSEPORT_CBPF refused: {e.Message}");
        }
        if (args.Get("--hash") is { } hashText) packet = packet with { FlowHash = ReuseportGroupSetup.ParseHash(hashText) };
        int count = ReuseportGroupSetup.Members(args);
        using var ns = new NetNamespace();
        var members = new Sock[count];
        for (int i = 0; i < count; i++)
        {
            var s = ns.Sockets.Create(packet.Family, packet.Protocol);
            s.Name = $"member{i}";
            s.ReusePort = true;
            s.Bind(packet.To);
            if (packet.Protocol == SocketProtocol.Tcp) s.Listen();
            members[i] = s;
        }
        members[0].AttachReuseportFilter(filter);
        var group = members[0].ReuseportGroup!;
        uint hash = packet.FlowHash ?? packet.Hash();
        uint? retval = filter.Run(packet, hash);
        var result = ns.Lookup(packet);
        bool indexed = retval is uint r && r < (uint)group.Members.Count;
        string outcome = indexed ? "select" : "hash";
        if (args.Has("--json"))
        {
            JsonOutput.Write(stdout, w =>
            {
                w.WriteStartObject();
                w.WriteString("filter", path);
                w.WriteString("programType", "classic");
                w.WriteNumber("instructions", filter.Code.Count);
                w.WriteStartObject("context");
                ReuseportRun.WritePacket(w, packet, hash);
                w.WriteEndObject();
                w.WriteStartArray("members");
                foreach (var m in group.Members) ReuseportRun.Socket(w, null, m);
                w.WriteEndArray();
                if (retval is uint v) w.WriteNumber("retval", v);
                else w.WriteNull("retval");
                w.WriteString("outcome", outcome);
                if (result.Socket is { } s) ReuseportRun.Socket(w, "socket", s);
                else w.WriteNull("socket");
                w.WriteEndObject();
            });
            return Cli.Ok;
        }
        stdout.WriteLine($"filter {path} (classic, {filter.Code.Count} instruction(s))");
        stdout.WriteLine($"context {packet}, hash 0x{hash:x8}, group of {group.Members.Count} ({string.Join(", ", group.Members.Select(ReuseportRun.Name))})");
        string to = result.Socket is { } receiver ? ReuseportRun.Name(receiver) : "no member";
        stdout.WriteLine(retval switch
        {
            null => $"no return value (the packet is shorter than its transport header): the hash picks {to}",
            _ when indexed => $"retval {retval}: {to}",
            _ => $"retval {retval} (past the {group.Members.Count} member(s)): the hash picks {to}",
        });
        return Cli.Ok;
    }
}
