using System.Text.Json;
using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Cli;

/// <summary>
/// <c>bpfjit run FILTER.cbpf</c>: a classic reuseport filter in tcpdump -ddd's text form, attached to a group of new
/// members and run once; <c>examples/reuseport-source-port.cbpf</c> picks member (source port &amp; 1).
/// </summary>
public class ClassicFilterCliTests
{
    static readonly string Example = Repo("examples", "reuseport-source-port.cbpf");

    [TestCase("udp", 40001, 1)]
    [TestCase("udp", 40002, 0)]
    [TestCase("tcp", 40003, 1)]
    public void The_filters_value_picks_the_member(string proto, int sourcePort, int member)
    {
        var json = Json("run", Example, "--proto", proto, "--from", $"127.0.0.9:{sourcePort}", "--to", "127.0.0.1:9000", "--members", "3");
        Assert.That(json.GetProperty("programType").GetString(), Is.EqualTo("classic"));
        Assert.That(json.GetProperty("instructions").GetInt32(), Is.EqualTo(3));
        Assert.That(json.GetProperty("members").GetArrayLength(), Is.EqualTo(3));
        Assert.That(json.GetProperty("retval").GetUInt32(), Is.EqualTo((uint)member));
        Assert.That(json.GetProperty("outcome").GetString(), Is.EqualTo("select"));
        Assert.That(json.GetProperty("socket").GetProperty("name").GetString(), Is.EqualTo($"member{member}"));
    }

    [Test]
    public void Text_output_names_the_member_or_the_hash()
    {
        var (code, output, err) = Run("run", Example, "--proto", "udp", "--from", "127.0.0.9:40001", "--to", "127.0.0.1:9000");
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.Contain("filter " + Example + " (classic, 3 instruction(s))"));
        Assert.That(output, Does.Contain("retval 1: member1 (cookie "));
        // One member: 1 is past it, and the hash picks member0.
        (code, output, err) = Run("run", Example, "--proto", "udp", "--from", "127.0.0.9:40001", "--to", "127.0.0.1:9000", "--members", "1");
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.Contain("retval 1 (past the 1 member(s)): the hash picks member0 (cookie "));
    }

    [Test]
    public void Bad_text_is_bad_input_and_a_refused_filter_exit_one()
    {
        string bad = Temp(".cbpf", "2\n6 0 0 0\n");
        string refused = Temp(".cbpf", "2\n52 0 0 0\n6 0 0 0\n");
        try
        {
            AssertBadInput(Run("run", bad, "--proto", "udp", "--from", "127.0.0.9:1", "--to", "127.0.0.1:9000"), "the count says 2 instruction(s), 1 follow");
            AssertBadInput(Run("run", Example, "--proto", "udp", "--from", "127.0.0.9:1", "--to", "127.0.0.1:9000", "--engine", "jit"),
                "--engine does not apply to a classic filter (.cbpf)");
            var (code, _, err) = Run("run", refused, "--proto", "udp", "--from", "127.0.0.9:1", "--to", "127.0.0.1:9000");
            Assert.That(code, Is.EqualTo(1), err);
            Assert.That(err, Does.Contain("SO_ATTACH_REUSEPORT_CBPF refused").And.Contain("division by constant 0 (EINVAL)"));
        }
        finally
        {
            File.Delete(bad);
            File.Delete(refused);
        }
    }
}
