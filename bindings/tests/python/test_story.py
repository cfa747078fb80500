"""A whole story through the Python bindings and a real linli-server.

A coordinator creates a space and invites; two residents join through the
server; a satisfaction vote is opened, cast (one resident offline, syncing
later), closed and published; every phone ends with the same result.
"""

import threading

import pytest
import linli_ffi as linli


class Recorder(linli.LinliListener):
    def __init__(self):
        self.changes = []
        self.progress = []
        self.lock = threading.Lock()

    def on_change(self, space_id, document, item_id):
        with self.lock:
            self.changes.append((space_id, document, item_id))

    def on_sync_progress(self, space_id, round, sent, received, done):
        with self.lock:
            self.progress.append((round, sent, received, done))


def test_a_vote_through_the_server(tmp_path, server):
    coord = linli.LinliApp.open(str(tmp_path / "coord"))
    recorder = Recorder()
    coord.set_listener(recorder)
    space = coord.create_space("幸福里社区", "王主任")
    coord.sync_now(space, server)
    invites = [coord.create_invite(space, name, [linli.Role.RESIDENT]) for name in ("李阿姨", "陈大爷")]
    coord.sync_now(space, server)

    residents = []
    for i, inv in enumerate(invites):
        app = linli.LinliApp.open(str(tmp_path / f"resident{i}"))
        joined = app.join(inv.code, ["李阿姨", "陈大爷"][i], server)
        assert joined.space_id == space and joined.member_id == inv.member_id
        residents.append(app)
    coord.sync_now(space, server)  # the register now holds both residents

    spec = linli.VoteSpec(
        title="小区环境满意度",
        kind=linli.VoteKind.SATISFACTION(),
        eligibility=linli.Eligibility.ALL_MEMBERS(),
        ballots_public=False,
        hide_results=True,
        proxy_limit=1,
    )
    vote = coord.create_vote(space, spec)
    assert coord.open_vote(space, vote) == 3
    coord.sync_now(space, server)

    receipts = []
    for app, choice in zip(residents, (0, 3)):
        app.sync_now(space, server)
        receipts.append(app.cast_ballot(space, vote, [choice]))
    receipts.append(coord.cast_ballot(space, vote, [1]))
    assert coord.vote_results(space, vote) is None, "hidden until the close"
    # The first resident syncs now; the second stays offline until after the close:
    # their ballot was cast before the close, so it still counts.
    residents[0].sync_now(space, server)
    coord.sync_now(space, server)
    coord.close_vote(space, vote)
    coord.sync_now(space, server)
    residents[1].sync_now(space, server)
    coord.sync_now(space, server)
    published = coord.publish_vote(space, vote)
    coord.sync_now(space, server)

    assert published.counted == 3
    assert [o.heads for o in published.options] == [1, 1, 0, 1, 0]
    assert published.satisfaction_basis_points == 6667  # 2 of 3 satisfied
    assert sorted(published.counted_receipts) == sorted(receipts), "every voter finds their receipt"
    for app in residents:
        app.sync_now(space, server)
        assert app.published_result(space, vote) == published
    # A resident raises a topic; the other replies; the coordinator hides a post
    # and records the decision, linked to the vote.
    topic = residents[0].raise_topic(space, "垃圾分类点太远", "环境", "老人倒垃圾要走很远")
    first = residents[0].post(space, topic, "能不能在3栋旁边加一个点", None, None)
    residents[0].sync_now(space, server)
    residents[1].sync_now(space, server)
    residents[1].support_topic(space, topic)
    reply = residents[1].post(space, topic, "同意", first, first)
    spam = residents[1].post(space, topic, "卖房广告", None, None)
    residents[1].sync_now(space, server)
    coord.sync_now(space, server)
    with pytest.raises(linli.LinliError.NotAllowed):
        residents[0].hide_post(space, spam, "广告")
    coord.hide_post(space, spam, "商业广告")
    coord.decide_topic(space, topic, "在3栋旁增设分类点", vote, [coord.my_member(space)], "2026-06-30")
    coord.sync_now(space, server)
    threads = []
    for app in residents:
        app.sync_now(space, server)
        threads.append(app.thread(space, topic))
    assert threads[0] == threads[1] == coord.thread(space, topic)
    by_id = {p.post_id: p for p in threads[0]}
    assert by_id[reply].parent == first and by_id[spam].hidden_reason == "商业广告" and by_id[spam].body == ""
    [row] = [t for t in residents[0].topics(space, 0, 10) if t.topic_id == topic]
    assert (row.supports, row.posts, row.status) == (1, 3, "decided")
    md = residents[1].topic_disclosure_markdown(space, topic)
    assert "# 垃圾分类点太远" in md and "在3栋旁增设分类点" in md
    assert [e.what for e in coord.topic_timeline(space, topic)][0] == "raised"
    assert any(doc.startswith("item/") for (_, doc, _) in recorder.changes), "the listener heard of the vote"
    assert recorder.progress and recorder.progress[-1][3], "sync progress reported, ending done"
    coord.shutdown()


def test_errors_are_the_public_error(tmp_path, server):
    coord = linli.LinliApp.open(str(tmp_path / "coord"))
    space = coord.create_space("s", "c")
    coord.sync_now(space, server)
    stranger = linli.LinliApp.open(str(tmp_path / "stranger"))
    with pytest.raises(linli.LinliError.InvalidInput):
        stranger.join("NOT-A-CODE", "x", server)
    with pytest.raises(linli.LinliError.NotAllowed):
        stranger.sync_now(space, server)  # not a device of this space
    with pytest.raises(linli.LinliError.NotFound):
        stranger.sync_now("0" * 32, server)  # a space the server does not hold
    with pytest.raises(linli.LinliError.Network):
        coord.sync_now(space, "http://127.0.0.1:9")  # nothing listens there
    spec = linli.VoteSpec(
        title="t", kind=linli.VoteKind.YES_NO_ABSTAIN(), eligibility=linli.Eligibility.ALL_MEMBERS(),
        ballots_public=True, hide_results=False, proxy_limit=1,
    )
    vote = coord.create_vote(space, spec)
    with pytest.raises(linli.LinliError.InvalidInput):
        coord.cast_ballot(space, vote, [0])  # still a draft
    coord.open_vote(space, vote)
    with pytest.raises(linli.LinliError.InvalidInput):
        coord.cast_ballot(space, vote, [7])
    with pytest.raises(linli.LinliError.InvalidInput):
        coord.cast_ballot(space, vote, [-1])
    assert coord.vote_results(space, vote).counted == 0


def test_a_meeting_hub_on_a_phone(tmp_path, server):
    coord = linli.LinliApp.open(str(tmp_path / "coord"))
    space = coord.create_space("海岛村", "村委会")
    inv = coord.create_invite(space, "渔民", [linli.Role.RESIDENT])
    with pytest.raises(linli.LinliError.InvalidInput):
        coord.start_hub("127.0.0.1:0", "not a host/")
    info = coord.start_hub("127.0.0.1:0", None)
    hub = info.link  # what the coordinator shows as a QR code
    assert hub.startswith("linli-hub://" + info.address + "/#sha256=")
    probe = linli.LinliApp.open(str(tmp_path / "probe"))
    with pytest.raises(linli.LinliError.InvalidInput):
        probe.sync_now(space, hub[:-1])  # a damaged link
    resident = linli.LinliApp.open(str(tmp_path / "resident"))
    resident.join(inv.code, "渔民", hub)  # no server at the meeting
    coord.add_unit(space, "u1", "1", "1", "101", 7500)
    resident.sync_now(space, hub)
    coord.stop_hub()
    assert [u.unit_id for u in resident.units(space, 0, 10)] == ["u1"]
    # Later the coordinator's phone carries everything to the server.
    coord.sync_now(space, server)
    newcomer_view = linli.LinliApp.open(str(tmp_path / "late"))
    with pytest.raises(linli.LinliError.NotAllowed):
        newcomer_view.sync_now(space, server)  # not a member
    assert sorted(m.name for m in coord.members(space, 0, 10)) == ["村委会", "渔民"]


NEEDS = """{
  "format": "linli-survey/1",
  "title": "2026年居民需求调查",
  "per": "member",
  "items": [
    {"type": "number", "id": "age", "label": "您的年龄", "required": true, "min": 0, "max": 130},
    {"type": "group", "id": "elder", "label": "长者服务", "relevant": "${age} >= 60", "items": [
      {"type": "single", "id": "alone", "label": "是否独居", "required": true,
       "options": [{"value": "yes", "label": "是"}, {"value": "no", "label": "否"}]}
    ]},
    {"type": "rating", "id": "sat", "label": "对社区服务的满意度", "scale": 5, "required": true},
    {"type": "text", "id": "say", "label": "建议", "max_length": 100}
  ]
}"""


def test_a_survey_through_the_server(tmp_path, server):
    import csv
    import io
    import json

    coord = linli.LinliApp.open(str(tmp_path / "coord"))
    space = coord.create_space("幸福里社区", "王主任")
    coord.sync_now(space, server)
    inv = coord.create_invite(space, "李阿姨", [linli.Role.RESIDENT])
    coord.sync_now(space, server)
    resident = linli.LinliApp.open(str(tmp_path / "resident"))
    resident.join(inv.code, "李阿姨", server)
    coord.sync_now(space, server)

    # A bad file is refused with the question and the line.
    with pytest.raises(linli.LinliError.BadDefinition) as bad:
        coord.create_survey(space, NEEDS.replace("${age} >= 60", "${agee} >= 60"))
    [problem] = bad.value.problems
    assert problem.question_id == "elder" and problem.line == 7, problem
    assert "`agee` is not an earlier question" in problem.message

    survey = coord.create_survey(space, NEEDS)
    assert coord.survey(space, survey).stage == "draft"
    assert coord.publish_survey(space, survey) == 2
    coord.sync_now(space, server)
    resident.sync_now(space, server)
    assert resident.visible_questions(space, survey, '{"age": 72}') == ["age", "elder", "alone", "sat", "say"]
    # Offline: a draft, then validation with one problem per question.
    resident.save_survey_draft(space, survey, '{"age": 72}')
    problems = resident.check_answers(space, survey, '{"age": 72, "sat": 9}')
    assert [(p.question_id, p.message) for p in problems] == [
        ("alone", "an answer is required"),
        ("sat", "a value from 1 to 5"),
    ]
    with pytest.raises(linli.LinliError.BadAnswers) as bad:
        resident.submit_response(space, survey, '{"age": 72, "sat": 9}')
    assert len(bad.value.problems) == 2
    first = resident.submit_response(space, survey, '{"age": 72, "alone": "yes", "sat": 2}')
    second = resident.submit_response(space, survey, '{"age": 72, "alone": "yes", "sat": 4, "say": "多办, \\"助餐\\""}')
    assert [s.receipt for s in resident.my_submissions(space, survey)] == [second, first]
    assert resident.survey_draft(space, survey) is None
    coord.submit_response(space, survey, '{"age": 45, "alone": "no", "sat": 5}')
    resident.sync_now(space, server)
    coord.sync_now(space, server)

    results = json.loads(coord.survey_results_json(space, survey, None, None))
    assert (results["audience"], results["responses"]) == (2, 2)
    sat = next(q for q in results["questions"] if q["id"] == "sat")
    assert sat["mean"] == 4.5 and sat["distribution"][3] == ["4", 1]
    alone = next(q for q in results["questions"] if q["id"] == "alone")
    assert alone["answered"] == 1, "the coordinator's hidden answer is not counted"

    # The CSV opens in a spreadsheet: a BOM, one row per response.
    text = coord.export_survey_csv(space, survey, None, None)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:], newline="")))
    assert len(rows) == 3
    by_name = {r[rows[0].index("name")]: r for r in rows[1:]}
    assert by_name["李阿姨"][rows[0].index("建议 [say]")] == '多办, "助餐"'
    with pytest.raises(linli.LinliError.NotAllowed):
        resident.export_survey_csv(space, survey, None, None)

    coord.close_survey(space, survey)
    published = coord.publish_survey_results(space, survey)
    coord.sync_now(space, server)
    resident.sync_now(space, server)
    assert resident.published_survey_results_json(space, survey) == published
    assert resident.survey(space, survey).stage == "closed"
    coord.shutdown()
    resident.shutdown()


def test_points_for_services_through_the_server(tmp_path, server):
    import csv
    import io
    import json
    import time

    coord = linli.LinliApp.open(str(tmp_path / "coord"))
    space = coord.create_space("幸福里社区", "王主任")
    coord.set_category(space, "care", "助老", 10, True)
    coord.set_reward(space, "haircut", "理发", "社区理发室", 15, 1, None, True)
    coord.sync_now(space, server)
    phones = {}
    for name in ["李阿姨", "陈师傅"]:
        inv = coord.create_invite(space, name, [linli.Role.RESIDENT])
        coord.sync_now(space, server)
        phones[name] = linli.LinliApp.open(str(tmp_path / name))
        phones[name].join(inv.code, name, server)
    li, chen = phones["李阿姨"], phones["陈师傅"]
    li_id, chen_id = li.my_member(space), chen.my_member(space)
    for p in (coord, li, chen):
        p.sync_now(space, server)

    # Chen offers to help; Li's mother is walked for 90 minutes (offline on both phones).
    chen.post_offer(space, linli.OfferKind.OFFER, "care", "陪老人散步", "", "周末")
    hours = chen.log_hours(space, li_id, None, "care", 90, int(time.time() * 1000) - 3_600_000, "陪李阿姨母亲散步")
    assert chen.balance(space, chen_id).points == 0, "nothing moves before the confirmation"
    chen.sync_now(space, server)
    li.sync_now(space, server)
    [todo] = li.hours_to_answer(space)
    assert (todo.hours_id, todo.minutes, todo.status) == (hours, 90, "pending")
    with pytest.raises(linli.LinliError.NotFound):
        coord.confirm_hours(space, hours)  # the coordinator's phone has not seen them yet
    coord.sync_now(space, server)
    with pytest.raises(linli.LinliError.NotAllowed):
        coord.confirm_hours(space, hours)  # only the recipient confirms
    li.confirm_hours(space, hours)
    li.sync_now(space, server)
    chen.sync_now(space, server)
    assert chen.balance(space, chen_id).points == 15
    assert chen.hours(space, chen_id)[0].status == "confirmed"

    # Bad input is the public error and changes nothing.
    with pytest.raises(linli.LinliError.InvalidInput):
        chen.log_hours(space, li_id, None, "care", 0, int(time.time() * 1000), "")
    with pytest.raises(linli.LinliError.InvalidInput):
        chen.transfer_points(space, li_id, 16, "")
    with pytest.raises(linli.LinliError.NotFound):
        chen.redeem_reward(space, "no-such-reward")
    assert chen.balance(space, chen_id).points == 15

    # Chen spends: a haircut, then nothing left to give.
    chen.redeem_reward(space, "haircut")
    assert chen.balance(space, chen_id).points == 0
    chen.sync_now(space, server)
    coord.sync_now(space, server)
    li.sync_now(space, server)
    assert [r.left for r in li.rewards(space)] == [0]
    statement = chen.statement(space, chen_id, None, None)
    assert [(l.reason, l.points, l.balance) for l in statement.lines] == [("hours", 15, 15), ("redeem", -15, 0)]

    # Every phone ends with the same ledger; the coordinator's export opens in a spreadsheet.
    for p in (coord, li, chen):
        assert (p.balance(space, chen_id).points, p.balance(space, li_id).points) == (0, 0)
        assert json.loads(p.ledger_totals_json(space, None, None))["issued"] == 15
    rows = list(csv.reader(io.StringIO(coord.export_ledger_csv(space, None, None)[1:], newline="")))
    assert [r[rows[0].index("reason")] for r in rows[1:]] == ["hours", "redeem"]
    assert [(v.member_id, v.minutes) for v in coord.volunteer_hours(space, None, None)] == [(chen_id, 90)]
    with pytest.raises(linli.LinliError.NotAllowed):
        li.export_ledger_csv(space, None, None)

    # Attending a consultation earns the meeting rule's points, once.
    coord.add_participation_rule(space, linli.Participation.MEETING, None, 3)
    meeting = coord.create_consultation(space, "十二月议事会", "2026-12-01", "活动室", [])
    coord.mark_attendance(space, meeting, li_id, True)
    coord.mark_attendance(space, meeting, li_id, True)
    coord.edit_minutes(space, meeting, 0, 0, "会议开始。")
    assert coord.minutes(space, meeting) == "会议开始。"
    # A topic's follow-up task links the volunteer hours spent on it.
    topic = li.raise_topic(space, "老人陪伴", "养老", "独居老人需要陪伴")
    li.sync_now(space, server)
    coord.sync_now(space, server)
    coord.decide_topic(space, topic, "组织志愿者陪伴", None, [chen_id], "2026-12-31")
    task = coord.add_task(space, topic, "每周陪伴", chen_id, "2026-12-31")
    coord.update_task(space, topic, task, "done", "已完成首次陪伴", [hours])
    with pytest.raises(linli.LinliError.NotFound):
        coord.update_task(space, topic, task, "done", "", ["no-such-hours"])
    coord.sync_now(space, server)
    li.sync_now(space, server)
    assert li.balance(space, li_id).points == 3
    assert any(e.detail.endswith("(90 min volunteer hours)") for e in li.topic_timeline(space, topic))
    assert "志愿服务 90 分钟" in li.topic_disclosure_markdown(space, topic)
    assert {"consultation"} <= {i.kind for i in li.items(space, 0, 50)}
    with pytest.raises(linli.LinliError.InvalidInput):
        coord.revoke_device(space, li_id, "not-hex")
    for p in (coord, li, chen):
        p.shutdown()
