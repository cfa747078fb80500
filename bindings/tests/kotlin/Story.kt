// The whole story through the Kotlin bindings on a desktop JVM, against a real
// linli-server on loopback. Fails loudly (non-zero exit) if anything differs.
//
// Run by scripts/test.sh: args = <linli-server binary> <scratch dir>.

import org.linli.core.*
import java.io.File
import kotlin.system.exitProcess

fun check(cond: Boolean, what: String) {
    if (!cond) {
        System.err.println("FAILED: $what")
        exitProcess(1)
    }
}

class Recorder : LinliListener {
    val changes = java.util.Collections.synchronizedList(mutableListOf<String>())
    @Volatile var lastDone = false
    override fun onChange(spaceId: String, document: String, itemId: String?) { changes.add(document) }
    override fun onSyncProgress(spaceId: String, round: Long, sent: Long, received: Long, done: Boolean) { lastDone = done }
}

fun startServer(bin: String, dir: File): Pair<Process, String> {
    val p = ProcessBuilder(bin, "--listen", "127.0.0.1:0", "--open-spaces", "--data-dir", File(dir, "server").path).start()
    val reader = p.errorStream.bufferedReader()
    while (true) {
        val line = reader.readLine() ?: error("linli-server did not start")
        val m = Regex("\"addr\":\"([^\"]+)\"").find(line)
        if (line.contains("\"listening\"") && m != null) {
            Thread { reader.forEachLine { } }.apply { isDaemon = true }.start()
            return p to "http://" + m.groupValues[1]
        }
    }
}

fun main(args: Array<String>) {
    val dir = File(args[1]).apply { mkdirs() }
    val (server, url) = startServer(args[0], dir)
    try {
        val coord = LinliApp.open(File(dir, "coord").path)
        val recorder = Recorder()
        coord.setListener(recorder)
        val space = coord.createSpace("幸福里社区", "王主任")
        coord.syncNow(space, url)
        val names = listOf("李阿姨", "陈大爷")
        val invites = names.map { coord.createInvite(space, it, listOf(Role.RESIDENT)) }
        coord.syncNow(space, url)
        val residents = invites.mapIndexed { i, inv ->
            val app = LinliApp.open(File(dir, "resident$i").path)
            val joined = app.join(inv.code, names[i], url)
            check(joined.spaceId == space && joined.memberId == inv.memberId, "joined the right space as the invited member")
            app
        }
        coord.syncNow(space, url)
        check(coord.members(space, 0, 10).size == 3, "the coordinator sees three members")

        val vote = coord.createVote(space, VoteSpec("加装电梯意见", VoteKind.YesNoAbstain, Eligibility.AllMembers, true, false, 1))
        check(coord.openVote(space, vote) == 3L, "an electorate of three")
        coord.syncNow(space, url)
        val receipts = mutableListOf<String>()
        residents.forEachIndexed { i, app ->
            app.syncNow(space, url)
            receipts.add(app.castBallot(space, vote, listOf(if (i == 0) 0 else 1)))
            app.syncNow(space, url)
        }
        receipts.add(coord.castBallot(space, vote, listOf(0)))
        coord.syncNow(space, url)
        coord.closeVote(space, vote)
        val result = coord.publishVote(space, vote)
        coord.syncNow(space, url)
        check(result.counted == 3L, "three ballots counted")
        check(result.options.map { it.heads } == listOf(2L, 1L, 0L), "two yes, one no: ${result.options}")
        check(result.countedReceipts.sorted() == receipts.sorted(), "every voter finds their receipt")
        for (app in residents) {
            app.syncNow(space, url)
            check(app.publishedResult(space, vote) == result, "every phone reads the same result")
            check(app.members(space, 0, 10) == coord.members(space, 0, 10), "every phone has the same register")
        }
        check(recorder.changes.any { it.startsWith("item/") } && recorder.lastDone, "the listener heard changes and sync progress")

        // A topic is raised and discussed; the coordinator moderates and decides.
        val topic = residents[0].raiseTopic(space, "电梯加装", "住房", "老人上下楼困难")
        val first = residents[0].post(space, topic, "我家住六楼，非常需要", null, null)
        residents[0].syncNow(space, url)
        residents[1].syncNow(space, url)
        residents[1].supportTopic(space, topic)
        val reply = residents[1].post(space, topic, "支持", first, null)
        residents[1].syncNow(space, url)
        coord.syncNow(space, url)
        coord.hidePost(space, reply, "测试隐藏")
        coord.decideTopic(space, topic, "申请加装电梯补贴", vote, listOf(coord.myMember(space)), "2026-09-30")
        coord.syncNow(space, url)
        residents.forEach { it.syncNow(space, url) }
        val thread = coord.thread(space, topic)
        check(residents.all { it.thread(space, topic) == thread }, "every phone shows the same thread")
        check(thread.first { it.postId == reply }.hiddenReason == "测试隐藏", "the hidden post is hidden everywhere")
        check(residents[0].topics(space, 0, 10).first { it.topicId == topic }.status == "decided", "the topic is decided")
        check(residents[1].topicDisclosureMarkdown(space, topic).contains("申请加装电梯补贴"), "the disclosure carries the decision")

        // A needs survey with skip logic: drafts, per-question problems, results, export.
        val definition = """
            {"format": "linli-survey/1", "title": "居民需求调查", "items": [
              {"type": "number", "id": "age", "label": "年龄", "required": true, "min": 0, "max": 130},
              {"type": "multiple", "id": "help", "label": "需要的服务", "relevant": "${'$'}{age} >= 60", "max": 2,
               "options": [{"value": "meals", "label": "助餐"}, {"value": "visits", "label": "探访"}]},
              {"type": "rating", "id": "sat", "label": "满意度", "scale": 5, "required": true}]}
        """.trimIndent()
        try { coord.createSurvey(space, definition.replace("\"min\": 0", "\"min\": \"zero\"")); check(false, "a bad definition") }
        catch (e: LinliException.BadDefinition) { check(e.problems.first().questionId == "age" && e.problems.first().line == 2L, "the bad definition names age on line 2: ${e.problems}") }
        val survey = coord.createSurvey(space, definition)
        check(coord.publishSurvey(space, survey) == 3L, "the survey is for three members")
        coord.syncNow(space, url)
        residents.forEach { it.syncNow(space, url) }
        check(residents[0].visibleQuestions(space, survey, "{\"age\": 30}") == listOf("age", "sat"), "help is hidden under 60")
        residents[0].saveSurveyDraft(space, survey, "{\"age\": 70}")
        check(residents[0].surveyDraft(space, survey) == "{\"age\": 70}", "the draft is kept")
        try { residents[0].submitResponse(space, survey, "{\"age\": 70, \"help\": [\"meals\", \"visits\", \"x\"]}"); check(false, "bad answers") }
        catch (e: LinliException.BadAnswers) { check(e.problems.map { it.questionId } == listOf("help", "sat"), "one problem per question: ${e.problems}") }
        residents[0].submitResponse(space, survey, "{\"age\": 70, \"help\": [\"meals\"], \"sat\": 5}")
        residents[1].submitResponse(space, survey, "{\"age\": 40, \"help\": [\"visits\"], \"sat\": 3}")
        check(!residents[1].mySubmissions(space, survey).first().answersJson.contains("help"), "a hidden answer is not stored")
        residents.forEach { it.syncNow(space, url) }
        coord.syncNow(space, url)
        coord.closeSurvey(space, survey)
        val surveyResults = coord.publishSurveyResults(space, survey)
        check(surveyResults.contains("\"responses\":2"), "two responses counted")
        val csv = coord.exportSurveyCsv(space, survey, null, null)
        check(csv.startsWith("\uFEFF") && csv.contains("李阿姨"), "the CSV has a BOM and the named respondent")
        coord.syncNow(space, url)
        residents[1].syncNow(space, url)
        check(residents[1].publishedSurveyResultsJson(space, survey) == surveyResults, "residents read the published results")
        check(residents[1].survey(space, survey).stage == "closed", "the survey is closed")

        // Hours are logged, confirmed and spent: 李阿姨 walks 陈大爷 for an hour.
        coord.setCategory(space, "care", "助老", 12L, true)
        coord.setReward(space, "meal", "助餐券", "", 10L, null, null, true)
        coord.syncNow(space, url)
        residents.forEach { it.syncNow(space, url) }
        val volunteer = residents[0].myMember(space)
        val elder = residents[1].myMember(space)
        val hours = residents[0].logHours(space, elder, null, "care", 60L, System.currentTimeMillis() - 3_600_000L, "陪同散步")
        check(residents[0].balance(space, volunteer).points == 0L, "nothing is credited before the confirmation")
        residents[0].syncNow(space, url)
        residents[1].syncNow(space, url)
        check(residents[1].hoursToAnswer(space).map { it.hoursId } == listOf(hours), "the recipient sees the hours to answer")
        residents[1].confirmHours(space, hours)
        residents[1].syncNow(space, url)
        residents[0].syncNow(space, url)
        check(residents[0].balance(space, volunteer).points == 12L, "an hour at 12 points")
        try { residents[0].transferPoints(space, elder, 13L, ""); check(false, "more than held") } catch (e: LinliException.InvalidInput) {}
        residents[0].redeemReward(space, "meal")
        residents[0].transferPoints(space, elder, 2L, "谢谢")
        residents[0].syncNow(space, url)
        coord.syncNow(space, url)
        residents[1].syncNow(space, url)
        for (app in listOf(coord) + residents) {
            check(app.balance(space, volunteer).points == 0L && app.balance(space, elder).points == 2L, "every phone has the same balances")
        }
        val lines = residents[0].statement(space, volunteer, null, null).lines
        check(lines.map { it.reason to it.points } == listOf("hours" to 12L, "redeem" to -10L, "transfer" to -2L), "the statement: $lines")
        check(coord.ledgerFlags(space).isEmpty(), "no flags")
        check(coord.exportLedgerCsv(space, null, null).startsWith("\uFEFFmovement,"), "the ledger CSV has a BOM")

        // An owners' decision with an owner who has no phone (a paper ballot),
        // an owner given a proxy, and a unit whose owner is not verified.
        coord.addUnit(space, "101", "3栋", "1单元", "101", 10_000L)
        coord.addUnit(space, "102", "3栋", "1单元", "102", 10_000L)
        coord.addUnit(space, "103", "3栋", "1单元", "103", 8_000L)
        coord.addUnit(space, "104", "3栋", "1单元", "104", 8_000L)
        val granny = coord.addMemberWithoutPhone(space, "张奶奶", listOf())
        val unverified = coord.addMemberWithoutPhone(space, "赵先生", listOf())
        for ((m, u) in listOf(volunteer to "101", elder to "102", granny to "103", unverified to "104")) {
            coord.linkUnit(space, m, u, Relation.OWNER)
            if (m != unverified) coord.verifyOwner(space, m, u)
        }
        val owners = coord.createVote(space, VoteSpec("更换电梯", VoteKind.YesNoAbstain,
            Eligibility.VerifiedOwners(Matter.ORDINARY, null, null), false, false, 1))
        check(coord.openVote(space, owners) == 4L, "four units, four owners, phone or not")
        coord.syncNow(space, url)
        for (app in residents) app.syncNow(space, url)
        residents[1].grantProxy(space, owners, volunteer)
        residents[1].syncNow(space, url)
        residents[0].syncNow(space, url)
        residents[0].castBallot(space, owners, listOf(0))
        val byProxy = residents[0].castAsProxy(space, owners, elder, listOf(0))
        residents[0].syncNow(space, url)
        coord.syncNow(space, url)
        val paper = coord.enterPaperBallot(space, owners, granny, listOf(2))
        coord.closeVote(space, owners)
        val decided = coord.publishVote(space, owners)
        val fig = decided.owners!!.figures
        check(fig.totalHeads == 4L && fig.totalAreaCenti == 36_000L, "the denominators are every unit: $fig")
        check(fig.participatingHeads == 3L && fig.abstainingHeads == 1L, "3 of 4 took part, one abstained: $fig")
        check(fig.unverified.map { it.unitId } == listOf("104"), "the unverified unit is listed")
        check(decided.owners!!.passed && decided.countedReceipts.containsAll(listOf(byProxy, paper)), "passed, proxy and paper counted")
        val notice = coord.ownersNotice(space, owners)
        check(notice.markdown.contains("| 280.00 m² | 360.00 m² |") && !notice.markdown.contains("张奶奶"), "the notice: ${notice.markdown}")

        // Errors arrive as the public error type.
        try { residents[0].castBallot(space, vote, listOf(0)); check(false, "a closed vote takes no ballot") } catch (e: LinliException.InvalidInput) {}
        try { residents[0].closeVote(space, vote); check(false, "a resident cannot close") } catch (e: LinliException.NotAllowed) {}
        try { coord.join("garbage", "x", url); check(false, "a bad code") } catch (e: LinliException.InvalidInput) {}
        coord.shutdown()
        println("kotlin: 1 passed, 0 failed")
    } finally {
        server.destroy()
    }
}
