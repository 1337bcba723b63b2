using System.Diagnostics;
using BpfJit.Cli.Hosting;
using BpfJit.Cli.Output;
using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Cli.Commands;

/// <summary>
/// <c>bpfjit run</c> for an SK_REUSEPORT program: the packet's reuseport group (<see cref="ReuseportGroupSetup"/>),
/// a test run on the member the lookup found, and what the group does with the answer: the selected member, the
/// hash's pick, or a drop.
/// </summary>
static class ReuseportRun
{
    /// <summary>Runs <paramref name="host"/>'s SK_REUSEPORT program as <c>run</c> does and prints the outcome.</summary>
    public static int Run(Args args, ProgramHost host, Packet packet, IBpfEngine engine, int repeat, TextWriter stdout, TextWriter stderr)
    {
        var program = host.Reuseport!;
        var setup = ReuseportGroupSetup.Build(host, packet, ReuseportGroupSetup.Members(args));
        var group = setup.Group;
        // The hash the program reads and the group falls back to: the packet's flow hash (the runtime's 4-tuple mix).
        uint hash = packet.FlowHash ?? packet.Hash();
        uint retval = 0;
        Sock? selected = null;
        long elapsed;
        try
        {
            long started = Stopwatch.GetTimestamp();
            // Each run fills a fresh context, as bpf_run_sk_reuseport does per packet; the selection starts empty.
            for (int i = 0; i < repeat; i++) (retval, selected) = program.TestRun(group, setup.Found, packet, hash);
            elapsed = Stopwatch.GetTimestamp() - started;
        }
        catch (BpfException e) when (e is BpfFaultException or BpfRuntimeException)
        {
            stderr.WriteLine($"{host.Source}: fault: {e.Message}");
            return Cli.Negative;
        }
        ulong durationNs = (ulong)(Stopwatch.GetElapsedTime(0, elapsed).TotalNanoseconds / repeat);
        string verdict = retval switch { SkReuseportLayout.SkPass => "SK_PASS", SkReuseportLayout.SkDrop => "SK_DROP", _ => "invalid" };
        // reuseport_select_sock: anything but SK_PASS drops; SK_PASS with a selection delivers there, without one the hash picks.
        string outcome = retval != SkReuseportLayout.SkPass ? "drop" : selected != null ? "select" : "hash";
        Sock? receiver = outcome switch
        {
            "select" => selected,
            "hash" => group.SelectByHash(hash, packet),
            _ => null,
        };
        var maps = args.Has("--dump-maps") ? host.Maps : [];
        if (args.Has("--json"))
        {
            JsonOutput.Write(stdout, w =>
            {
                w.WriteStartObject();
                w.WriteString("program", program.Name);
                w.WriteString("programType", "sk_reuseport");
                w.WriteString("source", host.Source);
                w.WriteString("engine", engine.Name);
                w.WriteStartObject("context");
                ReuseportRun.WritePacket(w, packet, hash);
                w.WriteString("sk", ProgramHost.NameOf(setup.Found));
                w.WriteEndObject();
                w.WriteStartArray("members");
                foreach (var m in group.Members) Socket(w, null, m);
                w.WriteEndArray();
                w.WriteNumber("retval", retval);
                w.WriteString("verdict", verdict);
                w.WriteString("outcome", outcome);
                if (selected == null) w.WriteNull("selected");
                else Socket(w, "selected", selected);
                if (receiver == null) w.WriteNull("socket");
                else Socket(w, "socket", receiver);
                RunTail.WriteJson(w, args.Has("--repeat"), repeat, durationNs, args.Has("--dump-maps"), maps);
                w.WriteEndObject();
            });
            return Cli.Ok;
        }
        stdout.WriteLine($"program {host.Source} (sk_reuseport, {engine.Name})");
        stdout.WriteLine($"context {packet}, hash 0x{hash:x8}, group of {group.Members.Count} ({string.Join(", ", group.Members.Select(Name))}), sk {Name(setup.Found)}");
        string result = outcome switch
        {
            "select" => $"selected {Name(selected!)}",
            "hash" => receiver == null ? "nothing selected: the hash picks no member" : $"nothing selected: the hash picks {Name(receiver)}",
            _ => "dropped",
        };
        stdout.WriteLine($"retval {retval} ({verdict}), {result}");
        RunTail.WriteText(stdout, args.Has("--repeat"), repeat, durationNs, maps);
        return Cli.Ok;
    }

    /// <summary>The packet and hash a run verb's JSON context shows (inside its open "context" object).</summary>
    internal static void WritePacket(System.Text.Json.Utf8JsonWriter w, in Packet packet, uint hash)
    {
        w.WriteString("proto", PacketOptions.ProtoName(packet.Protocol));
        w.WriteString("family", PacketOptions.FamilyName(packet.Family));
        w.WriteString("from", packet.From.ToString());
        w.WriteString("to", packet.To.ToString());
        w.WriteNumber("hash", hash);
    }

    /// <summary>A socket as the run verbs print it: its name and cookie.</summary>
    internal static string Name(Sock s) => $"{ProgramHost.NameOf(s)} (cookie {s.Cookie})";

    /// <summary>A socket as the run verbs write it in JSON: its name and cookie.</summary>
    internal static void Socket(System.Text.Json.Utf8JsonWriter w, string? property, Sock s)
    {
        if (property == null) w.WriteStartObject();
        else w.WriteStartObject(property);
        w.WriteString("name", ProgramHost.NameOf(s));
        w.WriteNumber("cookie", s.Cookie);
        w.WriteEndObject();
    }
}
