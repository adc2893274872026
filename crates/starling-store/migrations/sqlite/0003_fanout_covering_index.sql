-- The fan-out walks an author's followers by follower id and needs each
-- one's options: with them in the index, the walk reads the index alone
-- instead of looking up every follow row (a fifth of a post's CPU when an
-- author has thousands of followers).
DROP INDEX follows_by_followee_follower;
CREATE INDEX follows_by_followee_follower ON follows(followee_id, follower_id, reblogs, notify);
