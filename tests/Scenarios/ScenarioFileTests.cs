using BpfJit.Runtime.Scenarios;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Scenarios;

/// <summary>Every scenario file in tests/scenarios on every engine: all checks pass, and there are checks.</summary>
[TestFixture]
public class ScenarioFileTests
{
    static string Dir => Path.Combine(Paths.RepoRoot, "tests", "scenarios");

    static IEnumerable<TestCaseData> Cases()
    {
        foreach (var engine in Engines.Names)
            foreach (var file in Directory.GetFiles(Dir, "*.json").Order(StringComparer.Ordinal))
                yield return new TestCaseData(engine, file).SetName($"scenario[{engine}] {Path.GetFileNameWithoutExtension(file)}");
    }

    [TestCaseSource(nameof(Cases))]
    public void Passes(string engine, string file)
    {
        var output = new StringWriter();
        var outcome = ScenarioRunner.RunFile(file, Engines.Get(engine), output);
        Assert.That(outcome.Failed, Is.Zero, output.ToString());
        Assert.That(outcome.Passed, Is.GreaterThan(0), "a scenario must check something");
    }

    [Test]
    public void EverySelftestAndTubularCaseHasAFile()
    {
        // Spec 8.2: 20 redirect subtests, query, 8 drop-on-lookup, drop on reuseport, 8 sk_assign, 9 multi prog; 9.2: tubular.
        var names = Directory.GetFiles(Dir, "*.json").Select(Path.GetFileNameWithoutExtension).ToHashSet();
        string[] required =
        [
            "selftest_tcp4_redir_port", "selftest_tcp4_redir_addr", "selftest_tcp4_redir_with_reuseport", "selftest_tcp4_redir_skip_reuseport",
            "selftest_tcp6_redir_port", "selftest_tcp6_redir_addr", "selftest_tcp4_to_6_redir_port", "selftest_tcp6_redir_with_reuseport",
            "selftest_tcp6_redir_skip_reuseport", "selftest_udp4_redir_port", "selftest_udp4_redir_addr", "selftest_udp4_redir_with_reuseport",
            "selftest_udp4_redir_and_reuseport_with_conns", "selftest_udp4_redir_skip_reuseport", "selftest_udp6_redir_port",
            "selftest_udp6_redir_addr", "selftest_udp4_to_6_redir_port", "selftest_udp6_redir_and_reuseport",
            "selftest_udp6_redir_and_reuseport_with_conns", "selftest_udp6_redir_skip_reuseport", "selftest_query_lookup_prog",
            "selftest_drop_on_lookup", "selftest_drop_on_valid_ifindex", "selftest_drop_on_reuseport_tcp4", "selftest_drop_on_reuseport_tcp6",
            "selftest_drop_on_reuseport_udp4", "selftest_sk_assign_helper_v4", "selftest_sk_assign_helper_v6",
            "selftest_sk_assign_rejects_tcp_established", "selftest_sk_assign_rejects_udp_connected",
            "selftest_multi_prog_pass_pass", "selftest_multi_prog_drop_drop", "selftest_multi_prog_pass_drop", "selftest_multi_prog_drop_pass",
            "selftest_multi_prog_pass_redir", "selftest_multi_prog_redir_pass", "selftest_multi_prog_drop_redir",
            "selftest_multi_prog_redir_drop", "selftest_multi_prog_redir_redir",
            "tubular_binding_precedence", "tubular_sort_port_wildcard_v4", "tubular_sort_longer_prefix_v6", "tubular_add_remove_binding_udp6",
            "tubular_metrics", "tubular_register_supported_socket_kinds",
        ];
        Assert.That(required.Where(r => !names.Contains(r)), Is.Empty);
    }
}
